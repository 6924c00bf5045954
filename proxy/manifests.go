package proxy

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/gorilla/mux"

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
// (distribution spec "Pulling manifests"). A bare tag with per-platform
// members upstream gets the synthesized index; everything else passes
// through.
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
	if _, member := p.o.Grammar.Parse(tag); member || index.IsReferrerTag(tag) {
		return p.forward(w, r, t, pull)
	}
	ctx := r.Context()
	tags, err := t.up.cache.Tags(ctx, t.repo)
	if err != nil {
		if resolve.Definitive(err) {
			// Let upstream give its own answer (NAME_UNKNOWN, ...).
			return p.forward(w, r, t, pull)
		}
		return err
	}
	g, err := t.up.resolver.Resolve(ctx, t.repo, tag, tags, p.policy(t))
	if err != nil {
		return err
	}
	if g.Action == index.ServeUpstream {
		return p.forward(w, r, t, pull)
	}
	res := g.Result
	if missing := index.Missing(res, p.o.Policies.Match(t.name).Require); len(missing) > 0 {
		// Not all required platforms are there yet (a CI still pushing):
		// serve what upstream has under the tag, or nothing.
		if g.BareDescriptor != nil {
			return p.forward(w, r, t, pull)
		}
		return &index.IncompleteError{Base: tag, Missing: missing}
	}
	if err := p.o.Store.Put(ctx, t.key(res.Digest), res.Bytes); err != nil {
		p.log.Warn("index store write failed", "error", err)
	}
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
		return p.forward(w, r, t, forwardOpts{path: manifestPath(t, e.Descriptor.Digest.String()), scopes: []string{upstream.Scope(t.repo, "pull")}})
	}
	return apiErr(errcode.ErrorCodeManifestUnknown,
		"%s:%s is a %s; the request accepts neither it nor a %s image for %s",
		t.name, res.Base, res.MediaType, platform.String(want), platform.String(want))
}

// manifestByDigest serves a manifest by digest: a synthesized index from
// the store, else upstream's manifest, else a recomputation of the
// repository's indexes (a replica that never served this digest).
func (p *Proxy) manifestByDigest(w http.ResponseWriter, r *http.Request, t target, dgst v1.Hash, pull forwardOpts) error {
	ctx := r.Context()
	b, err := p.o.Store.Get(ctx, t.key(dgst))
	if err == nil {
		p.metrics.served.WithLabelValues("digest").Inc()
		return serveStored(w, r, dgst, b)
	}
	if !errors.Is(err, store.ErrNotFound) {
		p.log.Warn("index store read failed", "error", err)
	}
	_, err = t.up.cache.Head(ctx, t.repo, dgst.String())
	if err == nil || !resolve.NotFound(err) {
		// Upstream has it (or cannot say): pass through.
		return p.forward(w, r, t, pull)
	}
	if b, ok, err := p.recompute(r, t, dgst); err != nil {
		return err
	} else if ok {
		p.metrics.served.WithLabelValues("recomputed").Inc()
		return serveStored(w, r, dgst, b)
	}
	return p.forward(w, r, t, pull)
}

// recompute synthesizes every group of the repository and reports whether
// one of them has digest dgst. Results go to the store, so the next miss
// for any of them is a store hit.
func (p *Proxy) recompute(r *http.Request, t target, dgst v1.Hash) ([]byte, bool, error) {
	ctx := r.Context()
	tags, err := t.up.cache.Tags(ctx, t.repo)
	if err != nil {
		if resolve.Definitive(err) {
			return nil, false, nil
		}
		return nil, false, err
	}
	// Every index of this tag set goes to the store below, so once a tag
	// set was recomputed, a miss means the digest is none of them: random
	// digests cost a store lookup, not a resolution of every group.
	key := t.up.client.Host() + "/" + t.repo
	fp := fingerprint(tags)
	if done, ok := p.recomputed.Get(key); ok && done == fp {
		return nil, false, nil
	}
	groups, err := t.up.resolver.ResolveAll(ctx, t.repo, tags, p.policy(t))
	if err != nil {
		return nil, false, err
	}
	p.recomputed.Add(key, fp)
	var found []byte
	require := p.o.Policies.Match(t.name).Require
	for _, g := range groups {
		if g == nil || g.Result == nil || len(index.Missing(g.Result, require)) > 0 {
			continue
		}
		if err := p.o.Store.Put(ctx, t.key(g.Result.Digest), g.Result.Bytes); err != nil {
			p.log.Warn("index store write failed", "error", err)
		}
		if g.Result.Digest == dgst {
			found = g.Result.Bytes
		}
	}
	return found, found != nil, nil
}

// serveStored serves index bytes kept by digest; the media type is the
// one written in them.
func serveStored(w http.ResponseWriter, r *http.Request, dgst v1.Hash, b []byte) error {
	mt := types.OCIImageIndex
	if m, err := v1.ParseIndexManifest(bytes.NewReader(b)); err == nil && m.MediaType != "" {
		mt = m.MediaType
	}
	return serveBytes(w, r, mt, dgst, b)
}

// serveBytes writes a manifest. HEAD and GET send identical headers; the
// body is exactly the bytes that were hashed.
func serveBytes(w http.ResponseWriter, r *http.Request, mt types.MediaType, dgst v1.Hash, b []byte) error {
	h := w.Header()
	h.Set("Content-Type", string(mt))
	h.Set("Content-Length", strconv.Itoa(len(b)))
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
	if r.ContentLength > resolve.DefaultMaxManifestBytes && r.Method == http.MethodPut {
		return apiErr(errcode.ErrorCodeManifestInvalid, "manifest is %d bytes, over the %d-byte limit", r.ContentLength, resolve.DefaultMaxManifestBytes)
	}
	scope := "pull,push"
	if r.Method == http.MethodDelete {
		scope = "delete"
	}
	return p.forward(w, r, t, forwardOpts{
		path:      manifestPath(t, ref),
		scopes:    []string{upstream.Scope(t.repo, scope)},
		onSuccess: func() { t.up.cache.Invalidate(t.repo) },
	})
}

// synthesisOff reports whether the client asked for upstream's own view
// (upstream.HeaderSynthesis: off), as inspect and migrate do.
func synthesisOff(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get(upstream.HeaderSynthesis), "off")
}

// fingerprint identifies a tag list.
func fingerprint(tags []string) string {
	h := sha256.New()
	for _, t := range tags {
		h.Write([]byte(t))
		h.Write([]byte{0})
	}
	return string(h.Sum(nil))
}
