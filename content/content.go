package content

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/manifold-proxy/manifold/internal/lru"
)

// Defaults of Options.
const (
	// DefaultMaxBytes bounds the stored content: 10 GiB.
	DefaultMaxBytes = 10 << 30
	// DefaultIdleTimeout fails a fill whose upstream sends nothing for a
	// minute.
	DefaultIdleTimeout = time.Minute
	// DefaultConfirmationBytes bounds the memory of confirmations: 16 MiB,
	// about 100,000 (repository, digest) pairs. More are read back from the
	// driver when needed.
	DefaultConfirmationBytes = 16 << 20
)

// root is where everything of this package lives on the driver; v1 is the
// layout of this release.
const root = "/manifold/content/v1"

// ErrNotFound is returned for content the cache does not hold.
var ErrNotFound = errors.New("not in the content cache")

// ErrUnsupported is returned for digests the cache cannot verify (an
// algorithm other than sha256 and sha512): such content is not kept.
var ErrUnsupported = errors.New("digest algorithm not supported by the content cache")

// DigestError is a fill whose bytes do not hash to the digest asked for.
type DigestError struct {
	Want, Got v1.Hash
}

func (e *DigestError) Error() string {
	return fmt.Sprintf("upstream sent content of digest %s for %s", e.Got, e.Want)
}

// Kind is what a digest names: a blob or a manifest. The two are kept
// apart: a manifest carries its media type, and an upstream confirms each
// through its own endpoint.
type Kind uint8

const (
	Blob Kind = iota
	Manifest
)

func (k Kind) String() string {
	if k == Manifest {
		return "manifest"
	}
	return "blob"
}

func (k Kind) dir() string { return k.String() + "s" }

// Options configure a Cache.
type Options struct {
	// Driver stores the content. Required.
	Driver storagedriver.StorageDriver
	// LocalRoot, when set, is the local directory Driver (a filesystem
	// driver) is rooted at. Fills then spool inside it and are committed
	// with a rename, and stored blobs are served from their files with
	// sendfile. Default "": fills spool in SpoolDir and are copied into
	// Driver once verified.
	LocalRoot string
	// SpoolDir holds fills under way when LocalRoot is not set. Default
	// os.TempDir().
	SpoolDir string
	// MaxBytes bounds the content stored; the least recently used goes
	// first. Fills under way are not counted. Default DefaultMaxBytes.
	MaxBytes int64
	// ConfirmationBytes bounds confirmations kept in memory. Default
	// DefaultConfirmationBytes.
	ConfirmationBytes int64
	// IdleTimeout fails a fill whose upstream sends nothing for this long.
	// Default DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Logger receives failures of the driver. Default: silent.
	Logger *slog.Logger
}

// Stats count what the cache did; read them with atomic loads.
type Stats struct {
	// UpstreamBytes read from upstreams by fills.
	UpstreamBytes atomic.Int64
	// Evictions of stored content to stay under MaxBytes.
	Evictions atomic.Int64
	// FillsInFlight are fills under way.
	FillsInFlight atomic.Int64
	// DigestMismatches are fills whose bytes did not match their digest.
	DigestMismatches atomic.Int64
	// WriteErrors are writes to the storage driver that failed (a fill's
	// commit, a confirmation): the content was served, not kept.
	WriteErrors atomic.Int64
	// ReadErrors are lookups the storage driver failed (not a missing
	// object): the content was fetched from the upstream as a miss.
	ReadErrors atomic.Int64
}

// Cache is the content cache. It is safe for concurrent use.
type Cache struct {
	d   storagedriver.StorageDriver
	o   Options
	log *slog.Logger

	index     *lru.Sized[entryKey, int64] // what is stored, by recency; value: object size
	confirmed atomic.Pointer[lru.Sized[confKey, struct{}]]

	evMu    sync.Mutex
	evicted []entryKey // evicted from index, still to delete on the driver

	mu    sync.Mutex
	fills map[entryKey]*fill

	Stats Stats
}

type entryKey struct {
	kind   Kind
	digest v1.Hash
}

// New opens the cache on o.Driver: it removes fills a previous process
// left unfinished and rebuilds the index of what is stored (evicting, if
// MaxBytes shrank). It contacts only the driver.
func New(ctx context.Context, o Options) (*Cache, error) {
	if o.Driver == nil {
		return nil, errors.New("content: no storage driver")
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.ConfirmationBytes <= 0 {
		o.ConfirmationBytes = DefaultConfirmationBytes
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.SpoolDir == "" {
		o.SpoolDir = os.TempDir()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	spool := o.SpoolDir
	if o.LocalRoot != "" {
		spool = filepath.Join(o.LocalRoot, filepath.FromSlash(uploadsPath))
	}
	// Fail at start, not at the first pull, when fills cannot be written.
	if err := os.MkdirAll(spool, 0o755); err != nil {
		return nil, fmt.Errorf("content cache: %w", err)
	}
	c := &Cache{d: o.Driver, o: o, log: o.Logger, fills: map[entryKey]*fill{}}
	c.index = lru.New[entryKey, int64](o.MaxBytes, c.onEvict)
	c.resetConfirmations()
	if err := c.removeStaleUploads(ctx); err != nil {
		return nil, err
	}
	if err := c.rebuild(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Close writes the recency order of what is stored, for the next New.
// Fills under way are not waited for; what they leave is removed by the
// next New.
func (c *Cache) Close(ctx context.Context) error { return c.saveRecency(ctx) }

// Bytes is the size of what is stored; Len the number of entries.
func (c *Cache) Bytes() int64 { return c.index.Bytes() }

// Len is the number of entries stored.
func (c *Cache) Len() int { return c.index.Len() }

// MaxBytes is the bound on what is stored.
func (c *Cache) MaxBytes() int64 { return c.o.MaxBytes }

// hasher is the hash of a digest algorithm the cache verifies.
func hasher(d v1.Hash) (hash.Hash, error) {
	switch {
	case d.Algorithm == "sha256" && len(d.Hex) == 64:
		return sha256.New(), nil
	case d.Algorithm == "sha512" && len(d.Hex) == 128:
		return sha512.New(), nil
	}
	return nil, fmt.Errorf("%s: %w", d, ErrUnsupported)
}

func verify(d v1.Hash, h hash.Hash) error {
	if got := hex.EncodeToString(h.Sum(nil)); got != d.Hex {
		return &DigestError{Want: d, Got: v1.Hash{Algorithm: d.Algorithm, Hex: got}}
	}
	return nil
}

// dataPath is where the content of k lives on the driver. Only digests
// hasher accepts reach it: their algorithm and hex are path-safe.
func dataPath(k entryKey) string {
	return root + "/" + k.kind.dir() + "/" + k.digest.Algorithm + "/" + k.digest.Hex[:2] + "/" + k.digest.Hex
}

// Stat reports whether the content of digest d is stored, and its size.
// Content that another process (a replica on the same storage) stored is
// found on the driver and joins the index.
func (c *Cache) Stat(ctx context.Context, kind Kind, d v1.Hash) (int64, bool) {
	if _, err := hasher(d); err != nil {
		return 0, false
	}
	k := entryKey{kind, d}
	if size, ok := c.index.Get(k); ok {
		return size, true
	}
	fi, err := c.d.Stat(ctx, dataPath(k))
	if err != nil {
		c.lookupFailed(ctx, err)
	}
	if err != nil || fi.IsDir() {
		return 0, false
	}
	c.add(k, fi.Size())
	return fi.Size(), true
}

// Reader is stored content, open for reading. Its ReadSeeker is an
// *os.File when the driver is the local filesystem (io.Copy to a network
// connection then uses sendfile).
type Reader struct {
	io.ReadSeeker
	io.Closer
	Size int64
}

// Open opens the stored blob d. ErrNotFound when it is not stored (or was
// evicted between Stat and Open).
func (c *Cache) Open(ctx context.Context, d v1.Hash) (*Reader, error) {
	size, ok := c.Stat(ctx, Blob, d)
	if !ok {
		return nil, ErrNotFound
	}
	path := dataPath(entryKey{Blob, d})
	rc, err := c.d.Reader(ctx, path, 0)
	if err != nil {
		return nil, c.missing(entryKey{Blob, d}, err)
	}
	if f, ok := rc.(*os.File); ok {
		return &Reader{ReadSeeker: f, Closer: f, Size: size}, nil
	}
	rc.Close()
	r := &driverReader{ctx: ctx, d: c.d, path: path, size: size}
	return &Reader{ReadSeeker: r, Closer: r, Size: size}, nil
}

// missing turns a driver error for k into ErrNotFound when the object is
// gone (and forgets k).
// notFound: the driver has no object at the path (not a failure).
func notFound(err error) bool {
	var nf storagedriver.PathNotFoundError
	return errors.As(err, &nf)
}

// lookupFailed counts a lookup the driver failed — not a missing object,
// not a caller that left — which is then answered as a miss.
func (c *Cache) lookupFailed(ctx context.Context, err error) {
	if !notFound(err) && ctx.Err() == nil {
		c.Stats.ReadErrors.Add(1)
	}
}

func (c *Cache) missing(k entryKey, err error) error {
	if notFound(err) {
		c.index.Remove(k)
		return ErrNotFound
	}
	return fmt.Errorf("content cache (%s): %w", c.d.Name(), err)
}

// Manifest reads the stored manifest d: its media type and bytes.
func (c *Cache) Manifest(ctx context.Context, d v1.Hash) (types.MediaType, []byte, error) {
	if _, ok := c.Stat(ctx, Manifest, d); !ok {
		return "", nil, ErrNotFound
	}
	k := entryKey{Manifest, d}
	b, err := c.d.GetContent(ctx, dataPath(k))
	if err != nil {
		return "", nil, c.missing(k, err)
	}
	mt, body, ok := bytes.Cut(b, []byte("\n"))
	if !ok {
		return "", nil, fmt.Errorf("content cache: manifest %s has no media type line", d)
	}
	return types.MediaType(mt), body, nil
}

// PutManifest stores manifest d (its media type and bytes) once its bytes
// hash to d.
func (c *Cache) PutManifest(ctx context.Context, d v1.Hash, mt types.MediaType, b []byte) error {
	h, err := hasher(d)
	if err != nil {
		return err
	}
	h.Write(b)
	if err := verify(d, h); err != nil {
		c.Stats.DigestMismatches.Add(1)
		return err
	}
	if strings.ContainsAny(string(mt), "\r\n") {
		return fmt.Errorf("content cache: media type %q has a line break", mt)
	}
	k := entryKey{Manifest, d}
	if c.index.Contains(k) {
		return nil
	}
	obj := make([]byte, 0, len(mt)+1+len(b))
	obj = append(append(append(obj, mt...), '\n'), b...)
	if int64(len(obj)) > c.o.MaxBytes {
		return nil
	}
	if err := c.d.PutContent(ctx, dataPath(k), obj); err != nil {
		return fmt.Errorf("content cache (%s): %w", c.d.Name(), err)
	}
	c.add(k, int64(len(obj)))
	return nil
}

// Delete drops the content of d (a delete through the proxy, a purge).
func (c *Cache) Delete(ctx context.Context, kind Kind, d v1.Hash) error {
	if _, err := hasher(d); err != nil {
		return nil
	}
	k := entryKey{kind, d}
	c.mu.Lock()
	if f := c.fills[k]; f != nil {
		f.dropped.Store(true)
	}
	c.mu.Unlock()
	c.index.Remove(k)
	return c.deleteObject(ctx, dataPath(k))
}

func (c *Cache) deleteObject(ctx context.Context, path string) error {
	err := c.d.Delete(ctx, path)
	if err != nil && !notFound(err) {
		return fmt.Errorf("content cache (%s): deleting %s: %w", c.d.Name(), path, err)
	}
	return nil
}

// add puts k in the index and deletes what that evicts.
func (c *Cache) add(k entryKey, size int64) {
	c.index.Add(k, size, size)
	c.deleteEvicted()
}

// onEvict runs under the index's lock: it only queues the deletion.
func (c *Cache) onEvict(k entryKey, _ int64) {
	c.evMu.Lock()
	c.evicted = append(c.evicted, k)
	c.evMu.Unlock()
}

func (c *Cache) deleteEvicted() {
	c.evMu.Lock()
	ks := c.evicted
	c.evicted = nil
	c.evMu.Unlock()
	for _, k := range ks {
		c.Stats.Evictions.Add(1)
		// Detached: an eviction must happen although the request that
		// caused it ended.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := c.deleteObject(ctx, dataPath(k)); err != nil {
			c.log.Warn("content cache eviction failed", "digest", k.digest.String(), "error", err)
		}
		cancel()
	}
}
