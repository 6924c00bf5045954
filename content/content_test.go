package content_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/manifold-proxy/manifold/content"
	"github.com/manifold-proxy/manifold/store"
)

// backend is a storage driver for a cache, and its directory when it is
// the filesystem driver.
type backend struct {
	d   storagedriver.StorageDriver
	dir string
}

func fsBackend(t *testing.T) backend {
	t.Helper()
	dir := t.TempDir()
	d, err := filesystem.FromParameters(map[string]any{"rootdirectory": dir})
	if err != nil {
		t.Fatal(err)
	}
	return backend{d: d, dir: dir}
}

func open(t *testing.T, b backend, maxBytes int64) *content.Cache {
	t.Helper()
	c, err := content.New(context.Background(), content.Options{Driver: b.d, LocalRoot: b.dir, SpoolDir: t.TempDir(), MaxBytes: maxBytes, IdleTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func blob(t *testing.T, n int) ([]byte, v1.Hash) {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b, digestOf(b)
}

func digestOf(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

var repoA = store.Key{Registry: "registry.example:5000", Repository: "team/app"}

func keyOf(k store.Key, d v1.Hash) store.Key { k.Digest = d; return k }

// bytesOpener serves b as an upstream would, counting opens.
func bytesOpener(b []byte, opens *atomic.Int32) content.Opener {
	return func(context.Context) (io.ReadCloser, int64, error) {
		opens.Add(1)
		return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
	}
}

// fillAll reads the whole blob through a fill.
func fillAll(t *testing.T, c *content.Cache, d v1.Hash, open content.Opener) ([]byte, error) {
	t.Helper()
	f, err := c.Fill(d, keyOf(repoA, d), open)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Ready(context.Background()); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	_, err = f.CopyTo(context.Background(), &buf, 0, -1)
	return buf.Bytes(), err
}

// waitStored waits for a fill's commit (it runs after the readers are
// served).
func waitStored(t *testing.T, c *content.Cache, d v1.Hash) int64 {
	t.Helper()
	for range 200 {
		if size, ok := c.Stat(context.Background(), content.Blob, d); ok {
			return size
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never stored", d)
	return 0
}

func uploads(t *testing.T, b backend) []string {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(b.dir, "manifold/content/v1/_uploads"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestFillStoresVerifiedBlob(t *testing.T) {
	t.Parallel()
	for name, mk := range map[string]func(*testing.T) backend{
		"filesystem": fsBackend,
		"inmemory":   func(*testing.T) backend { return backend{d: inmemory.New()} },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := mk(t)
			c := open(t, b, 0)
			data, d := blob(t, 3<<20)
			var opens atomic.Int32
			got, err := fillAll(t, c, d, bytesOpener(data, &opens))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("fill: %v, %d bytes", err, len(got))
			}
			if size := waitStored(t, c, d); size != int64(len(data)) {
				t.Errorf("stored %d bytes, want %d", size, len(data))
			}
			if !c.Confirmed(context.Background(), content.Blob, keyOf(repoA, d)) {
				t.Error("the fill's 200 did not confirm its repository")
			}
			rd, err := c.Open(context.Background(), d)
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			if _, local := rd.ReadSeeker.(*os.File); local != (b.dir != "") {
				t.Errorf("reader is %T; want an *os.File exactly for the filesystem driver", rd.ReadSeeker)
			}
			// Seek as http.ServeContent does for a Range.
			if _, err := rd.Seek(1000, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			part := make([]byte, 100)
			if _, err := io.ReadFull(rd, part); err != nil || !bytes.Equal(part, data[1000:1100]) {
				t.Errorf("read at 1000: %v", err)
			}
			if opens.Load() != 1 {
				t.Errorf("%d upstream opens, want 1", opens.Load())
			}
			if u := uploads(t, b); len(u) != 0 {
				t.Errorf("uploads left behind: %v", u)
			}
		})
	}
}

// slowUpstream sends a blob in chunks on demand: the test decides when
// each byte leaves the upstream.
type slowUpstream struct {
	pr    *io.PipeReader
	pw    *io.PipeWriter
	data  []byte
	opens atomic.Int32
	ctxs  chan context.Context
}

func newSlowUpstream(data []byte) *slowUpstream {
	pr, pw := io.Pipe()
	return &slowUpstream{pr: pr, pw: pw, data: data, ctxs: make(chan context.Context, 1)}
}

func (u *slowUpstream) open(ctx context.Context) (io.ReadCloser, int64, error) {
	u.opens.Add(1)
	u.ctxs <- ctx
	go func() {
		<-ctx.Done()
		u.pr.CloseWithError(ctx.Err())
	}()
	return u.pr, int64(len(u.data)), nil
}

func (u *slowUpstream) send(from, to int) {
	if _, err := u.pw.Write(u.data[from:to]); err != nil {
		panic(err)
	}
}

// TestFillStreamsBeforeTheEnd: readers get the bytes as they arrive, all
// readers share one upstream fetch, and the last byte waits for the
// digest check.
func TestFillStreamsBeforeTheEnd(t *testing.T) {
	t.Parallel()
	b := fsBackend(t)
	c := open(t, b, 0)
	data, d := blob(t, 1<<20)
	up := newSlowUpstream(data)
	const readers = 5
	got := make([]chan []byte, readers)
	var wg sync.WaitGroup
	for i := range readers {
		f, err := c.Fill(d, keyOf(repoA, d), up.open)
		if err != nil {
			t.Fatal(err)
		}
		got[i] = make(chan []byte, 64)
		wg.Go(func() {
			defer f.Close()
			defer close(got[i])
			if _, err := f.Ready(context.Background()); err != nil {
				t.Error(err)
				return
			}
			_, err := f.CopyTo(context.Background(), chanWriter(got[i]), 0, -1)
			if err != nil {
				t.Error(err)
			}
		})
	}
	half := len(data) / 2
	up.send(0, half)
	for i := range readers {
		n := 0
		for n < half {
			n += len(<-got[i])
		}
	}
	up.send(half, len(data))
	if err := up.pw.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if up.opens.Load() != 1 {
		t.Errorf("%d upstream fetches for %d readers, want 1", up.opens.Load(), readers)
	}
	waitStored(t, c, d)
}

type chanWriter chan []byte

func (w chanWriter) Write(p []byte) (int, error) {
	w <- append([]byte(nil), p...)
	return len(p), nil
}

// TestFillDigestMismatch: other bytes than the digest says: the reader
// gets an error short of the last byte, nothing is stored or left.
func TestFillDigestMismatch(t *testing.T) {
	t.Parallel()
	b := fsBackend(t)
	c := open(t, b, 0)
	data, d := blob(t, 1<<20)
	bad := append([]byte(nil), data...)
	bad[len(bad)/2] ^= 0xff
	var opens atomic.Int32
	got, err := fillAll(t, c, d, bytesOpener(bad, &opens))
	var de *content.DigestError
	if !errors.As(err, &de) || de.Want != d || len(got) >= len(bad) {
		t.Fatalf("fill of corrupted bytes: %v after %d of %d bytes; want a DigestError before the last byte", err, len(got), len(bad))
	}
	time.Sleep(50 * time.Millisecond)
	if _, ok := c.Stat(context.Background(), content.Blob, d); ok || c.Len() != 0 {
		t.Error("corrupted content was stored")
	}
	if u := uploads(t, b); len(u) != 0 {
		t.Errorf("uploads left behind: %v", u)
	}
	if c.Stats.DigestMismatches.Load() != 1 {
		t.Errorf("DigestMismatches = %d", c.Stats.DigestMismatches.Load())
	}
	// The next fill fetches again, and stores the right bytes.
	if got, err := fillAll(t, c, d, bytesOpener(data, &opens)); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("second fill: %v", err)
	}
	waitStored(t, c, d)
}

// TestFillCancelledWhenEveryoneLeaves: the only client leaves mid-blob:
// the upstream fetch is cancelled and nothing half-written remains.
func TestFillCancelledWhenEveryoneLeaves(t *testing.T) {
	t.Parallel()
	b := fsBackend(t)
	c := open(t, b, 0)
	data, d := blob(t, 1<<20)
	up := newSlowUpstream(data)
	f, err := c.Fill(d, keyOf(repoA, d), up.open)
	if err != nil {
		t.Fatal(err)
	}
	upCtx := <-up.ctxs
	up.send(0, 1000)
	f.Close()
	select {
	case <-upCtx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream fetch was not cancelled when its only client left")
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(uploads(t, b)) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if u := uploads(t, b); len(u) != 0 {
		t.Errorf("a cancelled fill left %v", u)
	}
	if _, ok := c.Stat(context.Background(), content.Blob, d); ok {
		t.Error("a cancelled fill was stored")
	}
	// A new client starts a new fetch.
	var opens atomic.Int32
	if got, err := fillAll(t, c, d, bytesOpener(data, &opens)); err != nil || !bytes.Equal(got, data) || opens.Load() != 1 {
		t.Fatalf("fill after a cancelled one: %v, %d opens", err, opens.Load())
	}
}

func TestFillIdleTimeout(t *testing.T) {
	t.Parallel()
	c := open(t, fsBackend(t), 0)
	data, d := blob(t, 1000)
	up := newSlowUpstream(data)
	start := time.Now()
	_, err := fillAll(t, c, d, up.open)
	if err == nil || !strings.Contains(err.Error(), "sent nothing") {
		t.Fatalf("stalled upstream: %v", err)
	}
	if e := time.Since(start); e > 10*time.Second {
		t.Errorf("took %s to give up", e)
	}
}

func TestManifests(t *testing.T) {
	t.Parallel()
	b := fsBackend(t)
	c := open(t, b, 0)
	m := []byte(`{"schemaVersion":2}`)
	d := digestOf(m)
	if err := c.PutManifest(context.Background(), d, types.OCIManifestSchema1, []byte("other bytes")); err == nil {
		t.Error("PutManifest stored bytes of another digest")
	}
	if err := c.PutManifest(context.Background(), d, types.OCIManifestSchema1, m); err != nil {
		t.Fatal(err)
	}
	mt, got, err := c.Manifest(context.Background(), d)
	if err != nil || mt != types.OCIManifestSchema1 || !bytes.Equal(got, m) {
		t.Fatalf("Manifest: %q %q %v", mt, got, err)
	}
	if _, ok := c.Stat(context.Background(), content.Blob, d); ok {
		t.Error("a manifest is not a blob")
	}
	if err := c.Delete(context.Background(), content.Manifest, d); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Manifest(context.Background(), d); !errors.Is(err, content.ErrNotFound) {
		t.Errorf("after Delete: %v", err)
	}
}

func TestUnsupportedDigest(t *testing.T) {
	t.Parallel()
	c := open(t, fsBackend(t), 0)
	d := v1.Hash{Algorithm: "md5", Hex: "d41d8cd98f00b204e9800998ecf8427e"}
	if _, err := c.Fill(d, repoA, nil); !errors.Is(err, content.ErrUnsupported) {
		t.Errorf("Fill(md5): %v", err)
	}
	if _, ok := c.Stat(context.Background(), content.Blob, d); ok {
		t.Error("Stat(md5) found something")
	}
}

// put stores a blob of n bytes through a fill.
func put(t *testing.T, c *content.Cache, n int) v1.Hash {
	t.Helper()
	data, d := blob(t, n)
	var opens atomic.Int32
	if _, err := fillAll(t, c, d, bytesOpener(data, &opens)); err != nil {
		t.Fatal(err)
	}
	waitStored(t, c, d)
	return d
}

func stored(b backend) (n int, total int64) {
	_ = filepath.Walk(filepath.Join(b.dir, "manifold/content/v1/blobs"), func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n++
			total += fi.Size()
		}
		return nil
	})
	return n, total
}

// TestEviction: the store stays under its bound, least recently used
// first out, and the files go with the entries.
func TestEviction(t *testing.T) {
	t.Parallel()
	b := fsBackend(t)
	c := open(t, b, 3500)
	var ds []v1.Hash
	for range 3 {
		ds = append(ds, put(t, c, 1000))
	}
	c.Stat(context.Background(), content.Blob, ds[0]) // used: ds[1] is now the oldest
	for range 3 {
		ds = append(ds, put(t, c, 1000))
	}
	if n, total := stored(b); n != 3 || total > 3500 || c.Bytes() > 3500 {
		t.Errorf("%d files, %d bytes on disk, %d in the index; want 3 under 3500", n, total, c.Bytes())
	}
	if c.Stats.Evictions.Load() != 3 {
		t.Errorf("evictions %d, want 3", c.Stats.Evictions.Load())
	}
	for i, want := range []bool{false, false, false, true, true, true} {
		if _, ok := c.Stat(context.Background(), content.Blob, ds[i]); ok != want {
			t.Errorf("blob %d stored=%v, want %v", i, ok, want)
		}
	}
	// A blob over the whole bound is served but never stored.
	big := put(t, c, 100)
	_ = big
	data, d := blob(t, 4000)
	var opens atomic.Int32
	if got, err := fillAll(t, c, d, bytesOpener(data, &opens)); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("big blob: %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	if _, ok := c.Stat(context.Background(), content.Blob, d); ok {
		t.Error("a blob over maxBytes was stored")
	}
}

// TestRestart: a new Cache on the same storage holds what the old one
// did, in its recency order, with its confirmations.
func TestRestart(t *testing.T) {
	t.Parallel()
	b := fsBackend(t)
	c := open(t, b, 3500)
	a, bb, cc := put(t, c, 1000), put(t, c, 1000), put(t, c, 1000)
	c.Stat(context.Background(), content.Blob, a) // order now: b, c, a
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	c2 := open(t, b, 3500)
	if c2.Len() != 3 || c2.Bytes() != 3000 {
		t.Fatalf("after restart: %d entries, %d bytes", c2.Len(), c2.Bytes())
	}
	if !c2.Confirmed(context.Background(), content.Blob, keyOf(repoA, a)) {
		t.Error("a confirmation did not survive the restart")
	}
	put(t, c2, 1000) // evicts the least recently used: b
	for d, want := range map[v1.Hash]bool{a: true, bb: false, cc: true} {
		if _, ok := c2.Stat(context.Background(), content.Blob, d); ok != want {
			t.Errorf("%s stored=%v, want %v (recency lost in the restart?)", d, ok, want)
		}
	}
	// A smaller bound on the next start evicts down to it.
	c3 := open(t, b, 1500)
	if c3.Bytes() > 1500 {
		t.Errorf("restart with a smaller bound holds %d bytes", c3.Bytes())
	}
}

func TestConfirmations(t *testing.T) {
	t.Parallel()
	b := fsBackend(t)
	c := open(t, b, 0)
	ctx := context.Background()
	d := put(t, c, 100)
	sub := store.Key{Registry: repoA.Registry, Repository: repoA.Repository + "/sub"}
	other := store.Key{Registry: "other.example", Repository: repoA.Repository}
	c.Confirm(ctx, content.Blob, keyOf(sub, d))
	if c.Confirmed(ctx, content.Blob, keyOf(other, d)) || c.Confirmed(ctx, content.Manifest, keyOf(repoA, d)) {
		t.Error("a confirmation is per upstream, repository and kind")
	}
	if err := c.PurgeRepository(ctx, repoA.Registry, repoA.Repository); err != nil {
		t.Fatal(err)
	}
	if c.Confirmed(ctx, content.Blob, keyOf(repoA, d)) || !c.Confirmed(ctx, content.Blob, keyOf(sub, d)) {
		t.Error("PurgeRepository(team/app) must forget team/app, and only it")
	}
	if _, ok := c.Stat(ctx, content.Blob, d); !ok {
		t.Error("PurgeRepository dropped content")
	}
	if err := c.PurgeDigest(ctx, d); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Stat(ctx, content.Blob, d); ok || c.Confirmed(ctx, content.Blob, keyOf(sub, d)) {
		t.Error("PurgeDigest left the content or a confirmation")
	}
	if err := c.Unconfirm(ctx, content.Blob, keyOf(sub, d)); err != nil {
		t.Error(err)
	}
	bad := store.Key{Registry: repoA.Registry, Repository: "../../etc", Digest: d}
	c.Confirm(ctx, content.Blob, bad)
	if c.Confirmed(ctx, content.Blob, bad) {
		t.Error("a repository name that leaves its directory was confirmed")
	}
}

// TestDeleteDuringFill: a delete that comes while the blob is fetched wins
// over the fill's commit.
func TestDeleteDuringFill(t *testing.T) {
	t.Parallel()
	b := fsBackend(t)
	c := open(t, b, 0)
	data, d := blob(t, 1<<20)
	up := newSlowUpstream(data)
	f, err := c.Fill(d, keyOf(repoA, d), up.open)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := f.CopyTo(context.Background(), io.Discard, 0, -1)
		done <- err
	}()
	up.send(0, 1000)
	if err := c.Delete(context.Background(), content.Blob, d); err != nil {
		t.Fatal(err)
	}
	up.send(1000, len(data))
	_ = up.pw.Close()
	if err := <-done; err != nil {
		t.Fatalf("the client of a fill deleted meanwhile: %v", err)
	}
	f.Close()
	for i := 0; i < 100 && c.Stats.FillsInFlight.Load() > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if _, ok := c.Stat(context.Background(), content.Blob, d); ok {
		t.Error("a blob deleted during its fill was stored")
	}
	if n, _ := stored(b); n != 0 {
		t.Errorf("%d blob files on disk", n)
	}
}
