package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/manifold-proxy/manifold/content"
	"github.com/manifold-proxy/manifold/upstream"
)

// The content cache (Options.Content) serves what is immutable — blobs and
// manifests by digest — from its store, and keeps what it fetches. Through
// a repository it serves only what the upstream confirmed that repository
// holds (confirm); everything else about a request (authorization, the
// repository's mapping) was decided by wrap before these handlers run.

// blobFromContent serves GET and HEAD of blob d: stored → from the store
// (after the upstream confirmed the repository has it, once); not stored →
// a HEAD passes through, a GET starts or joins the blob's fill and streams
// it while it is written.
func (p *Proxy) blobFromContent(w http.ResponseWriter, r *http.Request, t target, d v1.Hash, pull forwardOpts) error {
	c, ctx := p.o.Content, r.Context()
	if _, ok := c.Stat(ctx, content.Blob, d); ok {
		if err := p.confirm(ctx, t, content.Blob, d); err != nil {
			return err
		}
		rd, err := c.Open(ctx, d)
		if err == nil {
			return p.serveStoredBlob(w, r, d, rd)
		}
		if !errors.Is(err, content.ErrNotFound) {
			p.contentStats.readErrors.Add(1)
			p.log.Warn("content cache read failed", "digest", d.String(), "error", err)
		}
	}
	if r.Method == http.MethodHead {
		pull.onSuccess = func() { c.Confirm(context.WithoutCancel(ctx), content.Blob, t.key(d)) }
		return p.forward(w, r, t, pull)
	}
	f, size, err := p.joinFill(ctx, t, d)
	var local *content.LocalError
	if errors.As(err, &local) || errors.Is(err, content.ErrUnsupported) {
		// The cache cannot take it (a digest it cannot verify, a full
		// disk): the blob passes through.
		if local != nil {
			p.log.Warn("content cache cannot fill", "digest", d.String(), "error", err)
		}
		return p.forward(w, r, t, pull)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	p.contentStats.misses[content.Blob].Add(1)
	return serveFill(w, r, f, d, size)
}

// joinFill joins or starts the fill of d through t's repository and waits
// for the upstream's answer. A fill started through another repository
// serves t only once the upstream confirmed t holds d; when that other
// repository turns out not to have it, t gets a fill of its own.
func (p *Proxy) joinFill(ctx context.Context, t target, d v1.Hash) (*content.Fill, int64, error) {
	key := t.key(d)
	open := func(ctx context.Context) (io.ReadCloser, int64, error) { return t.up.client.OpenBlob(ctx, t.repo, d) }
	for attempt := 0; ; attempt++ {
		f, err := p.o.Content.Fill(d, key, open)
		if err != nil {
			return nil, 0, err
		}
		foreign := f.Through() != key
		if foreign {
			if err := p.confirm(ctx, t, content.Blob, d); err != nil {
				f.Close()
				return nil, 0, err
			}
		}
		size, err := f.Ready(ctx)
		if err == nil {
			return f, size, nil
		}
		f.Close()
		if !foreign || attempt > 0 || !upstream.IsDefinitive(err) {
			return nil, 0, blobError(err, d)
		}
	}
}

// blobError names a blob the upstream does not have with the blob code
// (a HEAD's 404 has no body to carry one).
func blobError(err error, d v1.Hash) error {
	if upstream.IsNotFound(err) {
		return apiErr(errcode.ErrorCodeBlobUnknown, "blob unknown to the upstream: %s", d)
	}
	return err
}

// confirm makes sure the upstream said t's repository holds d (of kind):
// from what the cache remembers, else by asking the upstream once (a HEAD;
// concurrent askers share it).
func (p *Proxy) confirm(ctx context.Context, t target, kind content.Kind, d v1.Hash) error {
	c, key := p.o.Content, t.key(d)
	if c.Confirmed(ctx, kind, key) {
		return nil
	}
	ch := p.confirming.DoChan(kind.String()+"\x00"+key.String(), func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		var err error
		if kind == content.Blob {
			_, err = t.up.client.HeadBlob(ctx, t.repo, d)
		} else {
			_, err = t.up.cache.Head(ctx, t.repo, d.String())
		}
		if err == nil {
			c.Confirm(ctx, kind, key)
		}
		return nil, err
	})
	select {
	case res := <-ch:
		if kind == content.Blob {
			return blobError(res.Err, d)
		}
		return res.Err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// serveStoredBlob serves a stored blob: Range (206), HEAD and
// If-None-Match by http.ServeContent, with sendfile from the local file.
func (p *Proxy) serveStoredBlob(w http.ResponseWriter, r *http.Request, d v1.Hash, rd *content.Reader) error {
	defer rd.Close()
	blobHeaders(w.Header(), d)
	before := written(w)
	// The ReadSeeker itself (an *os.File on the local filesystem), not
	// rd: sendfile needs the file in plain sight.
	http.ServeContent(w, r, "", time.Time{}, rd.ReadSeeker)
	p.contentStats.hits[content.Blob].Add(1)
	p.contentStats.storeBytes.Add(written(w) - before)
	return nil
}

func blobHeaders(h http.Header, d v1.Hash) {
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Etag", `"`+d.String()+`"`)
	h.Set("Accept-Ranges", "bytes")
}

// errAborted marks a response that must end as a broken transfer: its
// headers promised a body that cannot be completed (wrap aborts it).
var errAborted = http.ErrAbortHandler

// serveFill streams a blob from its fill as the upstream sends it. The
// status and length are sent before the bytes are verified; when they turn
// out wrong (or the upstream stops), the response is aborted so the client
// sees a broken transfer, never a complete one.
func serveFill(w http.ResponseWriter, r *http.Request, f *content.Fill, d v1.Hash, size int64) error {
	start, end, partial, err := blobRange(r.Header.Get("Range"), size)
	if err != nil {
		return err
	}
	h := w.Header()
	blobHeaders(h, d)
	status := http.StatusOK
	if size >= 0 {
		h.Set("Content-Length", strconv.FormatInt(end-start, 10))
	}
	if partial {
		status = http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end-1, size))
	}
	w.WriteHeader(status)
	if _, err := f.CopyTo(r.Context(), w, start, end); err != nil {
		return fmt.Errorf("streaming %s: %w (%w)", d, err, errAborted)
	}
	return nil
}

// blobRange reads a Range header (validRange checked its form) against a
// blob of size bytes: [start, end) and whether it is a part. An unknown
// size serves the whole blob (a server may ignore Range).
func blobRange(h string, size int64) (start, end int64, partial bool, err error) {
	if h == "" || size < 0 {
		return 0, size, false, nil
	}
	first, last, _ := strings.Cut(strings.TrimPrefix(h, "bytes="), "-")
	a, _ := strconv.ParseInt(first, 10, 64)
	b, berr := strconv.ParseInt(last, 10, 64)
	switch {
	case first == "": // the last b bytes
		a, b = max(size-b, 0), size-1
	case berr != nil || b >= size:
		b = size - 1
	}
	if a > b || a >= size {
		return 0, 0, false, apiErr(errcode.ErrorCodeRangeInvalid, "Range %q is outside the blob's %d bytes", h, size)
	}
	return a, b + 1, true, nil
}

// written is what the response writer has written so far (wrap's
// recorder counts it).
func written(w http.ResponseWriter) int64 {
	if rec, ok := w.(*statusRecorder); ok {
		return rec.bytes
	}
	return 0
}

// manifestFromContent serves manifest d of t's repository from the content
// cache, fetching and storing it on a miss. served is false (with no
// error) when the upstream says the repository has no manifest d: it may
// be an index the proxy synthesizes, which the caller looks for next.
func (p *Proxy) manifestFromContent(w http.ResponseWriter, r *http.Request, t target, d v1.Hash, pull forwardOpts) (served bool, err error) {
	c, ctx := p.o.Content, r.Context()
	if _, ok := c.Stat(ctx, content.Manifest, d); ok {
		err := p.confirm(ctx, t, content.Manifest, d)
		if upstream.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return true, err
		}
		mt, b, err := c.Manifest(ctx, d)
		if err == nil {
			p.contentStats.hits[content.Manifest].Add(1)
			p.contentStats.storeBytes.Add(int64(len(b)))
			return true, serveBytes(w, r, mt, d, b)
		}
		if !errors.Is(err, content.ErrNotFound) {
			p.contentStats.readErrors.Add(1)
			p.log.Warn("content cache read failed", "digest", d.String(), "error", err)
		}
	}
	if r.Method == http.MethodHead {
		desc, err := t.up.cache.Head(ctx, t.repo, d.String())
		if upstream.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return true, err
		}
		c.Confirm(ctx, content.Manifest, t.key(d))
		return true, serveManifest(w, r, desc.MediaType, d, desc.Size, nil)
	}
	b, mt, err := t.up.cache.Manifest(ctx, t.repo, d, p.o.MaxManifestBytes)
	switch {
	case upstream.IsNotFound(err):
		return false, nil
	case errors.Is(err, upstream.ErrTooLarge):
		return true, p.forward(w, r, t, pull)
	case err != nil:
		return true, err
	}
	p.contentStats.misses[content.Manifest].Add(1)
	if err := c.PutManifest(ctx, d, mt, b); err != nil {
		p.contentStats.writeErrors.Add(1)
		p.log.Warn("content cache write failed", "digest", d.String(), "error", err)
	}
	c.Confirm(ctx, content.Manifest, t.key(d))
	return true, serveBytes(w, r, mt, d, b)
}

// tagFromContent serves a tag the proxy does not synthesize (a member tag,
// or a bare tag the resolver passes through) by its digest: the tag's
// descriptor comes from the resolver's cache (TTL, stale-while-revalidate,
// stale-if-error), the bytes from the content cache. desc is the tag's
// descriptor when the caller has it. A client whose Accept does not name
// the manifest's media type gets the upstream's own negotiation.
func (p *Proxy) tagFromContent(w http.ResponseWriter, r *http.Request, t target, tag string, desc *v1.Descriptor, pull forwardOpts) error {
	ctx := r.Context()
	if desc == nil {
		d, err := t.up.cache.Head(ctx, t.repo, tag)
		if err != nil {
			return p.forward(w, r, t, pull) // the upstream's own answer
		}
		desc = &d
	}
	if !ParseAccept(r.Header.Values("Accept")).Explicit(string(desc.MediaType)) {
		return p.forward(w, r, t, pull)
	}
	// The tag's answer is the upstream's word that the repository holds
	// the digest.
	p.o.Content.Confirm(ctx, content.Manifest, t.key(desc.Digest))
	if _, stored := p.o.Content.Stat(ctx, content.Manifest, desc.Digest); !stored && r.Method == http.MethodHead {
		return serveManifest(w, r, desc.MediaType, desc.Digest, desc.Size, nil)
	}
	served, err := p.manifestFromContent(w, r, t, desc.Digest, pull)
	if !served && err == nil {
		return p.forward(w, r, t, pull)
	}
	return err
}

// dropContent forgets digest d of kind after a delete through the proxy
// succeeded upstream: the content, and t's repository's confirmation.
func (p *Proxy) dropContent(ctx context.Context, t target, kind content.Kind, d v1.Hash) {
	c := p.o.Content
	if c == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	if err := errors.Join(c.Delete(ctx, kind, d), c.Unconfirm(ctx, kind, t.key(d))); err != nil {
		p.log.Warn("content cache: dropping a deleted digest failed", "digest", d.String(), "error", err)
	}
}

// purgeContent serves DELETE /_manifold/content/<name>[?digest=<digest>]:
// without a digest, the repository's confirmations are forgotten (nothing
// stored is served through it until the upstream confirms it again); with
// one, the digest's content and every confirmation of it are dropped.
// wrap authorized it as a delete on <name>.
func (p *Proxy) purgeContent(w http.ResponseWriter, r *http.Request, t target) error {
	c := p.o.Content
	if c == nil {
		return apiErr(errcode.ErrorCodeUnsupported, "this proxy has no content cache")
	}
	var err error
	if ds := r.URL.Query().Get("digest"); ds != "" {
		d, perr := parseDigest(ds)
		if perr != nil {
			return perr
		}
		err = c.PurgeDigest(r.Context(), d)
	} else {
		err = c.PurgeRepository(r.Context(), t.up.client.Host(), t.repo)
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}
