package content

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/manifold-proxy/manifold/store"
)

// Opener opens content at the upstream: its body and its size (-1 when
// the upstream did not say). An error is the upstream's answer (404, 429,
// a network failure) before any byte.
type Opener func(ctx context.Context) (io.ReadCloser, int64, error)

// LocalError is a fill the cache could not start on its own side (the
// spool cannot be written): the caller may pass the content through.
type LocalError struct{ Err error }

func (e *LocalError) Error() string { return "content cache: spool: " + e.Err.Error() }
func (e *LocalError) Unwrap() error { return e.Err }

// fill is one upstream fetch of a blob, shared by every client that asks
// for the blob while it runs. The upstream's bytes are spooled to a local
// file that each client reads as it grows; once the bytes are verified
// against the digest they are committed to the store.
type fill struct {
	c       *Cache
	key     entryKey
	through store.Key // the repository the fill fetches through
	ctx     context.Context
	cancel  context.CancelFunc

	mu       sync.Mutex
	changed  chan struct{} // closed (and replaced) on every change below
	ready    bool          // the upstream answered: size is known
	size     int64         // -1: the upstream did not say
	written  int64
	verified bool
	err      error
	readers  int
	dropped  atomic.Bool // deleted while it ran: what it commits is deleted again
	path     string      // local file holding the bytes: the spool, then the stored file
	spool    *os.File
	local    bool // the spool is inside Options.LocalRoot: commit is a rename
}

// Fill is one client's view of a fill: its own handle on the spool, opened
// when it joined (so the spool cannot be gone when it reads).
type Fill struct {
	f    *fill
	file *os.File
}

// bufferSize is what a fill reads from the upstream at a time.
const bufferSize = 256 << 10

var buffers = sync.Pool{New: func() any { b := make([]byte, bufferSize); return &b }}

// Fill joins the fill of blob d under way, or starts one that fetches
// through repository through with open. The caller reads it with Ready and
// CopyTo and must Close it. A fill every client closed before it was
// verified is cancelled, and nothing of it is kept.
func (c *Cache) Fill(d v1.Hash, through store.Key, open Opener) (*Fill, error) {
	h, err := hasher(d)
	if err != nil {
		return nil, err
	}
	k := entryKey{Blob, d}
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := c.fills[k]; f != nil {
		if r := f.join(); r != nil {
			return r, nil
		}
	}
	f, err := c.newFill(k, through)
	if err != nil {
		return nil, err
	}
	r := f.join()
	if r == nil {
		f.spool.Close()
		_ = os.Remove(f.path)
		return nil, &LocalError{fmt.Errorf("opening the spool of %s", d)}
	}
	c.fills[k] = f
	c.Stats.FillsInFlight.Add(1)
	go f.run(open, h)
	return r, nil
}

func (c *Cache) newFill(k entryKey, through store.Key) (*fill, error) {
	dir, local := c.o.SpoolDir, c.o.LocalRoot != ""
	if local {
		dir = filepath.Join(c.o.LocalRoot, filepath.FromSlash(uploadsPath))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, &LocalError{err}
	}
	spool, err := os.CreateTemp(dir, "fill-")
	if err != nil {
		return nil, &LocalError{err}
	}
	// Detached from the request that started it: the other clients must
	// not fail when the first one hangs up.
	ctx, cancel := context.WithCancel(context.Background())
	return &fill{c: c, key: k, through: through, ctx: ctx, cancel: cancel,
		changed: make(chan struct{}), size: -1,
		path: spool.Name(), spool: spool, local: local}, nil
}

// join adds a reader, with its own handle on the bytes, unless the fill
// failed or was cancelled.
func (f *fill) join() *Fill {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil || f.ctx.Err() != nil || f.dropped.Load() {
		return nil
	}
	file, err := os.Open(f.path)
	if err != nil {
		return nil
	}
	f.readers++
	return &Fill{f: f, file: file}
}

// Through is the repository the fill fetches through: the upstream's 200
// is that repository's confirmation, not anyone else's.
func (r *Fill) Through() store.Key { return r.f.through }

// Close says this client is done. The last one to leave a fill that is not
// verified yet cancels it.
func (r *Fill) Close() {
	r.file.Close()
	f := r.f
	f.mu.Lock()
	defer f.mu.Unlock()
	f.readers--
	if f.readers == 0 && !f.verified {
		f.cancel()
	}
}

// update changes the fill's state under its lock and wakes its readers.
func (f *fill) update(change func()) {
	f.mu.Lock()
	change()
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

type fillState struct {
	ready, verified bool
	size, written   int64
	err             error
	changed         <-chan struct{}
}

func (f *fill) state() fillState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fillState{f.ready, f.verified, f.size, f.written, f.err, f.changed}
}

// Ready waits for the upstream's answer: the size (-1 when the upstream did
// not say), or the upstream's error.
func (r *Fill) Ready(ctx context.Context) (int64, error) {
	for {
		s := r.f.state()
		switch {
		case s.err != nil && !s.ready:
			return 0, s.err
		case s.ready:
			return s.size, nil
		}
		select {
		case <-s.changed:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// CopyTo writes bytes [start, end) of the blob to w as the upstream sends
// them (end < 0: to the end). The last byte is written only once the whole
// blob is verified: when the fill fails, CopyTo returns its error having
// written less than asked, and the caller must abort the response so the
// client sees a broken transfer. w reads from an *os.File section
// (io.CopyN), so a network connection sends it with sendfile.
func (r *Fill) CopyTo(ctx context.Context, w io.Writer, start, end int64) (int64, error) {
	pos := start
	for {
		s := r.f.state()
		if s.err != nil {
			return pos - start, s.err
		}
		stop := end
		switch {
		case stop >= 0:
		case s.size >= 0:
			stop = s.size
		default: // the upstream did not say: the end is where it stops
			stop = s.written
		}
		limit := min(s.written, stop)
		if !s.verified && limit == stop {
			limit-- // held back until verified
		}
		if pos < limit {
			if _, err := r.file.Seek(pos, io.SeekStart); err != nil {
				return pos - start, err
			}
			n, err := io.CopyN(w, r.file, limit-pos)
			pos += n
			if err != nil {
				return pos - start, err
			}
			continue
		}
		if s.verified && pos >= stop {
			return pos - start, nil
		}
		select {
		case <-s.changed:
		case <-ctx.Done():
			return pos - start, ctx.Err()
		}
	}
}

// run fetches, verifies and commits; it owns the spool.
func (f *fill) run(open Opener, h hash.Hash) {
	defer f.c.Stats.FillsInFlight.Add(-1)
	defer f.cancel()
	err := f.fetch(open, h)
	if err == nil {
		err = verify(f.key.digest, h)
		if err != nil {
			f.c.Stats.DigestMismatches.Add(1)
		}
	}
	if err != nil {
		f.fail(err)
		return
	}
	f.update(func() { f.verified = true })
	f.commit()
}

// fetch copies the upstream's body to the spool and hashes it. Readers
// are woken as soon as a chunk is in the spool; the hash runs beside the
// copy (hashChunks), not in its way: the chunk it hashes is in memory
// already.
func (f *fill) fetch(open Opener, h hash.Hash) error {
	body, size, err := open(f.ctx)
	if err != nil {
		return err
	}
	defer body.Close()
	f.update(func() { f.ready, f.size = true, size })
	idle := f.c.o.IdleTimeout
	var stalled atomic.Bool
	timer := time.AfterFunc(idle, func() { stalled.Store(true); f.cancel() })
	defer timer.Stop()
	hc := newHashChunks(h)
	defer hc.wait()
	var n int64
	for {
		buf := hc.buffer()
		m, rerr := body.Read(buf)
		if m > 0 {
			timer.Reset(idle)
			if _, err := f.spool.Write(buf[:m]); err != nil {
				hc.done(buf[:0])
				return fmt.Errorf("content cache: spool: %w", err)
			}
			n += int64(m)
			f.c.Stats.UpstreamBytes.Add(int64(m))
			f.update(func() { f.written = n })
		}
		hc.done(buf[:m])
		switch {
		case errors.Is(rerr, io.EOF):
			if size >= 0 && n != size {
				return fmt.Errorf("upstream sent %d of %d bytes of %s", n, size, f.key.digest)
			}
			return nil
		case rerr != nil && stalled.Load():
			return fmt.Errorf("upstream sent nothing for %s while sending %s", idle, f.key.digest)
		case rerr != nil:
			return fmt.Errorf("reading %s from upstream: %w", f.key.digest, rerr)
		}
	}
}

// hashBuffers is how many chunks a fill reads ahead of its hash.
const hashBuffers = 4

// hashChunks hashes a fill's chunks on a goroutine of its own, in order,
// with a fixed set of buffers (hashBuffers × bufferSize, from the pool).
type hashChunks struct {
	h        hash.Hash
	free     chan []byte
	todo     chan []byte
	finished chan struct{}
	owned    []*[]byte
}

func newHashChunks(h hash.Hash) *hashChunks {
	hc := &hashChunks{h: h, free: make(chan []byte, hashBuffers), todo: make(chan []byte, hashBuffers), finished: make(chan struct{})}
	for range hashBuffers {
		bp := buffers.Get().(*[]byte)
		hc.owned = append(hc.owned, bp)
		hc.free <- *bp
	}
	go func() {
		defer close(hc.finished)
		for b := range hc.todo {
			hc.h.Write(b)
			hc.free <- b[:cap(b)]
		}
	}()
	return hc
}

// buffer is a free buffer to read the next chunk into.
func (hc *hashChunks) buffer() []byte { return <-hc.free }

// done hands a chunk read into a buffer from buffer to the hash.
func (hc *hashChunks) done(chunk []byte) { hc.todo <- chunk }

// wait ends the hashing once every chunk is hashed: the hash is complete.
func (hc *hashChunks) wait() {
	close(hc.todo)
	<-hc.finished
	for _, bp := range hc.owned {
		buffers.Put(bp)
	}
}

// fail ends a fill without storing anything.
func (f *fill) fail(err error) {
	if ctxErr := f.ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
		err = fmt.Errorf("fill of %s cancelled: every client left: %w", f.key.digest, err)
	}
	f.update(func() { f.err = err })
	f.c.forget(f)
	f.spool.Close()
	_ = os.Remove(f.path)
}

// commit moves the verified spool into the store. Its readers are served
// already; a failure here only means the next request fetches again.
func (f *fill) commit() {
	c, k := f.c, f.key
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	size, err := f.spool.Seek(0, io.SeekEnd)
	switch {
	case err == nil && size > c.o.MaxBytes:
		err = fmt.Errorf("%d bytes is over the cache's %d", size, c.o.MaxBytes)
	case err == nil && f.dropped.Load():
		err = errors.New("deleted while it was fetched")
	}
	if err == nil {
		if err = f.store(ctx); err != nil {
			c.Stats.WriteErrors.Add(1) // the driver failed, not the rules
		}
	}
	f.spool.Close()
	if err == nil {
		c.Confirm(ctx, Blob, f.through) // before the entry shows
		c.add(k, size)
		if f.dropped.Load() {
			// A delete came while the fill ran (Delete marks the fill
			// before it removes anything, and this looks after adding):
			// the delete wins.
			err = errors.Join(c.Delete(ctx, Blob, k.digest), c.Unconfirm(ctx, Blob, f.through))
		}
	} else {
		c.log.Warn("content cache: not storing a blob", "digest", k.digest.String(), "error", err)
	}
	c.forget(f)
	// Readers joined before forget have their own handle; later ones find
	// the stored entry.
	if err != nil || !f.local {
		_ = os.Remove(f.path)
	}
}

// store writes the spool to the driver: a rename when the spool is inside
// the driver's directory, else a copy (to an upload path first, so the
// object appears whole).
func (f *fill) store(ctx context.Context) error {
	if err := f.spool.Sync(); err != nil {
		return err
	}
	final := dataPath(f.key)
	upload := uploadsPath + "/" + filepath.Base(f.path)
	if f.local {
		f.mu.Lock()
		defer f.mu.Unlock()
		if err := f.c.d.Move(ctx, upload, final); err != nil {
			return err
		}
		f.path = filepath.Join(f.c.o.LocalRoot, filepath.FromSlash(final))
		return nil
	}
	w, err := f.c.d.Writer(ctx, upload, false)
	if err != nil {
		return err
	}
	if _, err := f.spool.Seek(0, io.SeekStart); err != nil {
		_ = w.Cancel(ctx)
		return err
	}
	if _, err := io.Copy(w, f.spool); err != nil {
		_ = w.Cancel(ctx)
		return err
	}
	if err := w.Commit(ctx); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return f.c.d.Move(ctx, upload, final)
}

// forget removes f from the fills under way (if it is still the one).
func (c *Cache) forget(f *fill) {
	c.mu.Lock()
	if c.fills[f.key] == f {
		delete(c.fills, f.key)
	}
	c.mu.Unlock()
}
