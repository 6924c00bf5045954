package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/gorilla/mux"

	"github.com/manifold-proxy/manifold/content"
	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/platform"
	"github.com/manifold-proxy/manifold/resolve"
	"github.com/manifold-proxy/manifold/store"
	"github.com/manifold-proxy/manifold/upstream"
)

// parseReference checks a manifest reference: a digest when it has a
// colon, else a tag.
func parseReference(ref string) (tag string, dgst v1.Hash, err error) {
	if strings.Contains(ref, ":") {
		h, err := v1.NewHash(ref)
		if err != nil {
			return "", v1.Hash{}, apiErr(errcode.ErrorCodeDigestInvalid, "invalid digest %q: %v", ref, err)
		}
		return "", h, nil
	}
	if !index.ValidTag(ref) {
		return "", v1.Hash{}, apiErr(errcode.ErrorCodeTagInvalid, "invalid tag %q", ref)
	}
	return ref, v1.Hash{}, nil
}

func manifestPath(t target, ref string) string { return "/v2/" + t.repo + "/manifests/" + ref }

// getManifest serves GET and HEAD /v2/<name>/manifests/<reference>
// (distribution spec "Pulling manifests"). What a bare tag serves is
// resolve.Resolver.Resolve's decision; this handler only acts on it:
// pass through, write the index (negotiating Accept), or say why there is
// nothing to serve. Everything that is not a bare tag passes through.
func (p *Proxy) getManifest(w http.ResponseWriter, r *http.Request, t target) error {
	ref := mux.Vars(r)["reference"]
	tag, dgst, err := parseReference(ref)
	if err != nil {
		return err
	}
	pull := forwardOpts{path: manifestPath(t, ref), scopes: []string{upstream.Scope(t.repo, "pull")}}
	if synthesisOff(r) {
		return p.forward(w, r, t, pull)
	}
	if tag == "" {
		return p.manifestByDigest(w, r, t, dgst, pull)
	}
	if index.IsReferrerTag(tag) {
		return p.forward(w, r, t, pull)
	}
	if _, member := p.o.Grammar.Parse(tag); member {
		return p.passTag(w, r, t, tag, nil, pull)
	}
	g, err := t.up.resolver.Resolve(r.Context(), t.repo, tag, p.rule(t))
	if err != nil {
		return err
	}
	switch g.Outcome {
	case resolve.Empty:
		return &index.EmptyGroupError{Base: tag, Excluded: g.Excluded}
	case resolve.Incomplete:
		// Not all required platforms are there yet (a CI still pushing).
		return &index.IncompleteError{Base: tag, Missing: g.Missing}
	case resolve.Index:
	default:
		return p.passTag(w, r, t, tag, g.BareDescriptor, pull)
	}
	res := g.Result
	accept := ParseAccept(r.Header.Values("Accept"))
	if accept.Allows(string(res.MediaType)) {
		p.metrics.served.WithLabelValues("tag").Inc()
		return serveBytes(w, r, res.MediaType, res.Digest, res.Bytes)
	}
	return p.serveDefaultChild(w, r, t, res, accept)
}

// serveDefaultChild answers a client that does not accept the synthesized
// list's media type with the default platform's image, as the reference
// registry does for clients that cannot read manifest lists.
func (p *Proxy) serveDefaultChild(w http.ResponseWriter, r *http.Request, t target, res *index.Result, accept Accept) error {
	want := platform.Base(*p.o.DefaultPlatform)
	for _, e := range res.Entries {
		if !platform.Same(*e.Descriptor.Platform, want) {
			continue
		}
		if !accept.Allows(string(e.Descriptor.MediaType)) {
			break
		}
		p.metrics.served.WithLabelValues("default-platform").Inc()
		child := forwardOpts{path: manifestPath(t, e.Descriptor.Digest.String()), scopes: []string{upstream.Scope(t.repo, "pull")}}
		if p.o.Content != nil {
			if served, err := p.manifestFromContent(w, r, t, e.Descriptor.Digest, child); served {
				return err
			}
		}
		return p.forward(w, r, t, child)
	}
	return apiErr(errcode.ErrorCodeManifestUnknown,
		"%s:%s is a %s; the request accepts neither it nor a %s image for %s",
		t.name, res.Base, res.MediaType, platform.String(want), platform.String(want))
}

// passTag serves a tag that is not synthesized: from the content cache by
// its digest when there is one (desc: the tag's descriptor, when known),
// else passed through.
func (p *Proxy) passTag(w http.ResponseWriter, r *http.Request, t target, tag string, desc *v1.Descriptor, pull forwardOpts) error {
	if p.o.Content != nil {
		return p.tagFromContent(w, r, t, tag, desc, pull)
	}
	return p.forward(w, r, t, pull)
}

// manifestByDigest serves a manifest by digest: a synthesized index from
// the store, else upstream's manifest (from the content cache when there
// is one), else the index one of the repository's bare tags serves
// (resolve.Resolver.FindIndex: a replica that never served this digest).
func (p *Proxy) manifestByDigest(w http.ResponseWriter, r *http.Request, t target, dgst v1.Hash, pull forwardOpts) error {
	ctx := r.Context()
	e, err := p.o.Store.Get(ctx, t.key(dgst))
	if err == nil {
		p.metrics.served.WithLabelValues("digest").Inc()
		return serveBytes(w, r, e.MediaType, dgst, e.Bytes)
	}
	if !errors.Is(err, store.ErrNotFound) {
		p.storeReadErrors.Add(1)
		p.log.Warn("index store read failed", "error", err)
	}
	if p.o.Content != nil {
		if served, err := p.manifestFromContent(w, r, t, dgst, pull); served {
			return err
		}
	}
	_, err = t.up.cache.Head(ctx, t.repo, dgst.String())
	if err == nil || !upstream.IsNotFound(err) {
		// Upstream has it (or cannot say): pass through.
		return p.forward(w, r, t, pull)
	}
	res, err := t.up.resolver.FindIndex(ctx, t.repo, p.rule(t), dgst)
	if errors.Is(err, resolve.ErrSearchTooLarge) {
		// Too many bare tags to search on a miss: the digest is only
		// found in the index store. Upstream's own 404 follows.
		p.log.Warn("index search refused", "repo", t.name, "digest", dgst.String(), "error", err)
		res, err = nil, nil
	}
	if err != nil {
		return err
	}
	if res == nil {
		return p.forward(w, r, t, pull)
	}
	p.metrics.served.WithLabelValues("recomputed").Inc()
	return serveBytes(w, r, res.MediaType, dgst, res.Bytes)
}

// serveBytes writes a manifest. HEAD and GET send identical headers; the
// body is exactly the bytes that were hashed.
func serveBytes(w http.ResponseWriter, r *http.Request, mt types.MediaType, dgst v1.Hash, b []byte) error {
	return serveManifest(w, r, mt, dgst, int64(len(b)), b)
}

// serveManifest writes a manifest of size bytes; b may be nil for a HEAD
// answered from a descriptor.
func serveManifest(w http.ResponseWriter, r *http.Request, mt types.MediaType, dgst v1.Hash, size int64, b []byte) error {
	h := w.Header()
	h.Set("Content-Type", string(mt))
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	h.Set("Docker-Content-Digest", dgst.String())
	h.Set("Etag", `"`+dgst.String()+`"`)
	if inm := r.Header.Get("If-None-Match"); inm != "" && strings.Contains(inm, dgst.String()) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
	return nil
}

// writeManifest passes PUT and DELETE of manifests through (distribution
// spec "Pushing manifests", "Deleting manifests") and forgets what was
// cached about the repository's tags.
func (p *Proxy) writeManifest(w http.ResponseWriter, r *http.Request, t target) error {
	if p.o.ReadOnly {
		return apiErr(errcode.ErrorCodeUnsupported, "this proxy is read-only")
	}
	ref := mux.Vars(r)["reference"]
	if _, _, err := parseReference(ref); err != nil {
		return err
	}
	if r.Method == http.MethodPut {
		if err := p.readManifest(r); err != nil {
			return err
		}
	}
	scope := "pull,push"
	if r.Method == http.MethodDelete {
		scope = "delete"
	}
	_, dgst, _ := parseReference(ref)
	return p.forward(w, r, t, forwardOpts{
		path:   manifestPath(t, ref),
		scopes: []string{upstream.Scope(t.repo, scope)},
		onSuccess: func() {
			t.up.cache.Invalidate(t.repo)
			if r.Method == http.MethodDelete && dgst.Hex != "" {
				p.dropContent(r.Context(), t, content.Manifest, dgst)
			}
		},
	})
}

// readManifest reads a pushed manifest whole, up to the manifest limit,
// declared length or not (a chunked body is counted too), and makes the
// request body replayable: a renewed token resends it. Over the limit it is
// 413 (distribution spec "Pushing manifests": registries may refuse large
// manifests with 413 Payload Too Large) and nothing reaches the upstream.
func (p *Proxy) readManifest(r *http.Request) error {
	limit := p.o.MaxManifestBytes
	tooLarge := func(n int64) error {
		return &statusError{status: http.StatusRequestEntityTooLarge, code: errcode.ErrorCodeManifestInvalid,
			message: fmt.Sprintf("manifest is %d bytes or more, over the %d-byte limit", n, limit)}
	}
	if r.ContentLength > limit {
		return tooLarge(r.ContentLength)
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return fmt.Errorf("reading the manifest: %w", err)
	}
	if int64(len(b)) > limit {
		return tooLarge(int64(len(b)))
	}
	if r.ContentLength >= 0 && int64(len(b)) != r.ContentLength {
		return errcode.ErrorCodeSizeInvalid.WithMessage("body does not match Content-Length")
	}
	r.ContentLength = int64(len(b))
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	return nil
}

// synthesisOff reports whether the client asked for upstream's own view
// (upstream.HeaderSynthesis: off), as inspect and migrate do.
func synthesisOff(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get(upstream.HeaderSynthesis), "off")
}
