package crossbuild

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Add is a file or directory copied into every image (--add SRC:DST).
type Add struct {
	// Src is a path on the build machine, relative to Options.Dir.
	Src string
	// Dst is the absolute path in the image (/srv/static); on Windows
	// images C:\srv\static is accepted too.
	Dst string
}

// ParseAdd parses SRC:DST. DST must be absolute; SRC may not contain a
// colon (the first colon separates them, so a Windows DST such as
// C:\srv works).
func ParseAdd(s string) (Add, error) {
	src, dst, ok := strings.Cut(s, ":")
	if !ok || src == "" || dst == "" {
		return Add{}, fmt.Errorf("add %q: want SRC:DST", s)
	}
	if _, err := imagePath(dst, false); err != nil {
		return Add{}, fmt.Errorf("add %q: %w", s, err)
	}
	return Add{Src: src, Dst: dst}, nil
}

// imagePath turns an absolute image path into a tar entry name: no
// leading slash; on Windows under Files/, the layer's filesystem root.
func imagePath(dst string, windows bool) (string, error) {
	p := dst
	if len(p) >= 2 && p[1] == ':' && (p[0]|0x20 >= 'a' && p[0]|0x20 <= 'z') {
		p = p[2:] // C:\srv → \srv
	}
	p = strings.ReplaceAll(p, `\`, "/")
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("destination %q is not an absolute path", dst)
	}
	p = strings.TrimPrefix(path.Clean(p), "/")
	if p == "" {
		return "", fmt.Errorf("destination %q is the root directory", dst)
	}
	if windows {
		p = "Files/" + p
	}
	return p, nil
}

// tarEntry is one file of the layer.
type tarEntry struct {
	name string
	typ  byte
	mode int64
	src  string // regular files: the file to copy
	link string // symlinks
}

// layerSpec is everything that decides a layer's bytes.
type layerSpec struct {
	windows bool
	binary  string // path of the compiled binary
	binName string // its entry name in the layer
	adds    []Add
	dir     string // resolves relative Add.Src
	mtime   time.Time
}

// entries lists the layer's files, parents first, sorted by name, each
// path once.
func (s layerSpec) entries() ([]tarEntry, error) {
	byName := map[string]tarEntry{}
	put := func(e tarEntry, what string) error {
		if old, dup := byName[e.name]; dup {
			if old.typ == tar.TypeDir && e.typ == tar.TypeDir {
				return nil
			}
			return fmt.Errorf("%s: %s is written twice", what, e.name)
		}
		byName[e.name] = e
		return nil
	}
	parents := func(name string) {
		for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
			if _, ok := byName[d]; !ok {
				byName[d] = tarEntry{name: d, typ: tar.TypeDir, mode: 0o755}
			}
		}
	}
	if s.windows {
		// A Windows layer holds the filesystem under Files/ and registry
		// hives under Hives/, which must exist even when empty.
		byName["Files"] = tarEntry{name: "Files", typ: tar.TypeDir, mode: 0o755}
		byName["Hives"] = tarEntry{name: "Hives", typ: tar.TypeDir, mode: 0o755}
	}
	if err := put(tarEntry{name: s.binName, typ: tar.TypeReg, mode: 0o755, src: s.binary}, "binary"); err != nil {
		return nil, err
	}
	parents(s.binName)
	for _, a := range s.adds {
		if err := s.addEntries(a, put, parents); err != nil {
			return nil, err
		}
	}
	out := make([]tarEntry, 0, len(byName))
	for _, e := range byName {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// addEntries puts the entries of one --add: a file, or a directory tree.
func (s layerSpec) addEntries(a Add, put func(tarEntry, string) error, parents func(string)) error {
	dst, err := imagePath(a.Dst, s.windows)
	if err != nil {
		return err
	}
	src := a.Src
	if !filepath.IsAbs(src) {
		src = filepath.Join(s.dir, src)
	}
	what := "add " + a.Src + ":" + a.Dst
	root, err := os.Lstat(src)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	parents(dst)
	if !root.IsDir() {
		e, err := fileEntry(dst, src, root, s.windows)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return put(e, what)
	}
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		name := dst
		if rel != "." {
			name = path.Join(dst, filepath.ToSlash(rel))
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		e, err := fileEntry(name, p, info, s.windows)
		if err != nil {
			return err
		}
		return put(e, what)
	})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// fileEntry maps a file on disk to an entry with fixed metadata: only the
// type and, for files, whether anyone may execute it survive.
func fileEntry(name, src string, info fs.FileInfo, windows bool) (tarEntry, error) {
	switch m := info.Mode(); {
	case m.IsDir():
		return tarEntry{name: name, typ: tar.TypeDir, mode: 0o755}, nil
	case m.IsRegular():
		mode := int64(0o644)
		if m.Perm()&0o111 != 0 {
			mode = 0o755
		}
		return tarEntry{name: name, typ: tar.TypeReg, mode: mode, src: src}, nil
	case m&fs.ModeSymlink != 0:
		if windows {
			return tarEntry{}, fmt.Errorf("%s is a symlink; Windows layers cannot hold symlinks built elsewhere", src)
		}
		link, err := os.Readlink(src)
		if err != nil {
			return tarEntry{}, err
		}
		return tarEntry{name: name, typ: tar.TypeSymlink, mode: 0o777, link: link}, nil
	}
	return tarEntry{}, fmt.Errorf("%s is not a regular file, directory or symlink", src)
}

// writeTar writes the layer: entries in name order, owner root (0:0, no
// names), the fixed mtime, no access or change times. The bytes depend
// only on the files' content, their executable bit and the mtime.
func (s layerSpec) writeTar(w io.Writer) error {
	entries, err := s.entries()
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, ModTime: s.mtime, Linkname: e.link, Format: tar.FormatPAX}
		if e.typ == tar.TypeDir {
			h.Name += "/"
		}
		if s.windows && e.typ == tar.TypeReg {
			// Windows needs a security descriptor on files to let the
			// container user run them.
			h.PAXRecords = map[string]string{"MSWINDOWS.rawsd": usersSecurityDescriptor}
		}
		var f *os.File
		if e.typ == tar.TypeReg {
			if f, err = os.Open(e.src); err != nil {
				return err
			}
			st, err := f.Stat()
			if err != nil {
				f.Close()
				return err
			}
			h.Size = st.Size()
		}
		if err := tw.WriteHeader(h); err != nil {
			if f != nil {
				f.Close()
			}
			return fmt.Errorf("writing %s: %w", e.name, err)
		}
		if f != nil {
			n, err := io.Copy(tw, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("writing %s: %w", e.name, err)
			}
			if n != h.Size {
				return fmt.Errorf("writing %s: file changed while being read", e.name)
			}
		}
	}
	return tw.Close()
}

// usersSecurityDescriptor is the self-relative security descriptor
// "O:BUG:BU" (owner and group BUILTIN\Users, no ACLs), base64 as the
// MSWINDOWS.rawsd PAX record carries it.
var usersSecurityDescriptor = func() string {
	// SID S-1-5-32-545: revision 1, two sub-authorities, NT authority (5),
	// BUILTIN (32), Users (545).
	sid := []byte{1, 2, 0, 0, 0, 0, 0, 5}
	sid = binary.LittleEndian.AppendUint32(sid, 32)
	sid = binary.LittleEndian.AppendUint32(sid, 545)
	// Header: revision 1, control SE_SELF_RELATIVE (0x8000), owner at 20,
	// group right after it, no SACL, no DACL.
	sd := []byte{1, 0}
	sd = binary.LittleEndian.AppendUint16(sd, 0x8000)
	sd = binary.LittleEndian.AppendUint32(sd, 20)
	sd = binary.LittleEndian.AppendUint32(sd, uint32(20+len(sid)))
	sd = binary.LittleEndian.AppendUint32(sd, 0)
	sd = binary.LittleEndian.AppendUint32(sd, 0)
	sd = append(append(sd, sid...), sid...)
	return base64.StdEncoding.EncodeToString(sd)
}()

// gzipLevel is BestSpeed, go-containerregistry's default too: a Go
// binary compresses about as well at level 1 as at 6, at a third of the
// time. Changing it changes every digest (and the "gz1" in the cache's
// file names).
const gzipLevel = gzip.BestSpeed

// gzipLayer is a layer whose compressed bytes are in memory.
type gzipLayer struct {
	gz     []byte
	digest v1.Hash
	diffID v1.Hash
	mt     types.MediaType
}

var _ v1.Layer = (*gzipLayer)(nil)

func (l *gzipLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *gzipLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *gzipLayer) Size() (int64, error)                { return int64(len(l.gz)), nil }
func (l *gzipLayer) MediaType() (types.MediaType, error) { return l.mt, nil }
func (l *gzipLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.gz)), nil
}
func (l *gzipLayer) Uncompressed() (io.ReadCloser, error) {
	return gzip.NewReader(bytes.NewReader(l.gz))
}

// buildLayer writes the layer's tar, and compresses it unless cacheDir
// holds the compressed bytes of the same tar from an earlier run. gzip
// output is fixed for a given Go release and level (no name, no mtime in
// the gzip header), so the digest is reproducible too.
func buildLayer(s layerSpec, mt types.MediaType, cacheDir string) (*gzipLayer, error) {
	var raw bytes.Buffer
	if err := s.writeTar(&raw); err != nil {
		return nil, err
	}
	diffID, _, err := v1.SHA256(bytes.NewReader(raw.Bytes()))
	if err != nil {
		return nil, err
	}
	l := &gzipLayer{diffID: diffID, mt: mt}
	// The compressor's output may change between Go releases: key the
	// cache by the release that compressed, so a cached layer is always
	// the bytes this binary would write.
	gzPath := filepath.Join(cacheDir, "layer-"+diffID.Hex+"-gz1-"+runtime.Version()+".tar.gz")
	if cacheDir != "" {
		if b, err := os.ReadFile(gzPath); err == nil {
			if l.digest, _, err = v1.SHA256(bytes.NewReader(b)); err == nil && gunzipsTo(b, diffID) {
				l.gz = b
				return l, nil
			}
		}
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzipLevel)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	l.gz = gz.Bytes()
	if l.digest, _, err = v1.SHA256(bytes.NewReader(l.gz)); err != nil {
		return nil, err
	}
	if cacheDir != "" {
		// One cached layer per platform directory: drop the older ones.
		old, _ := filepath.Glob(filepath.Join(cacheDir, "layer-*.tar.gz"))
		for _, o := range old {
			_ = os.Remove(o)
		}
		tmp := gzPath + ".tmp"
		if err := os.WriteFile(tmp, l.gz, 0o644); err == nil {
			_ = os.Rename(tmp, gzPath)
		}
	}
	return l, nil
}

// gunzipsTo checks a cached layer: it must decompress to diffID.
func gunzipsTo(gz []byte, diffID v1.Hash) bool {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return false
	}
	h, _, err := v1.SHA256(zr)
	return err == nil && h == diffID
}
