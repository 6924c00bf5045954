package proxy

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/gorilla/mux"

	"github.com/manifold-proxy/manifold/content"
	"github.com/manifold-proxy/manifold/upstream"
)

func parseDigest(s string) (v1.Hash, error) {
	h, err := v1.NewHash(s)
	if err != nil {
		return v1.Hash{}, apiErr(errcode.ErrorCodeDigestInvalid, "invalid digest %q: %v", s, err)
	}
	return h, nil
}

// validRange accepts what registries serve: "bytes=<start>-[<end>]" and
// the suffix range "bytes=-<length>" (RFC 9110 §14.1.1; the OCI conformance
// suite asks for the last 500 bytes this way).
func validRange(h string) bool {
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return false
	}
	start, end, ok := strings.Cut(spec, "-")
	if !ok {
		return false
	}
	if start == "" {
		return isDigits(end)
	}
	return isDigits(start) && (end == "" || isDigits(end))
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// getBlob serves GET and HEAD /v2/<name>/blobs/<digest> (distribution spec
// "Pulling blobs"): from the content cache when there is one (see
// blobFromContent), else streamed from upstream without buffering; Range
// requests get a 206 either way.
func (p *Proxy) getBlob(w http.ResponseWriter, r *http.Request, t target) error {
	d, err := parseDigest(mux.Vars(r)["digest"])
	if err != nil {
		return err
	}
	if rg := r.Header.Get("Range"); rg != "" && !validRange(rg) {
		return apiErr(errcode.ErrorCodeRangeInvalid, "invalid Range %q: want bytes=<start>-[<end>]", rg)
	}
	pull := forwardOpts{path: "/v2/" + t.repo + "/blobs/" + d.String(), scopes: []string{upstream.Scope(t.repo, "pull")}}
	if p.o.Content != nil {
		return p.blobFromContent(w, r, t, d, pull)
	}
	return p.forward(w, r, t, pull)
}

// deleteBlob passes DELETE /v2/<name>/blobs/<digest> through and drops the
// digest from the content cache.
func (p *Proxy) deleteBlob(w http.ResponseWriter, r *http.Request, t target) error {
	if p.o.ReadOnly {
		return apiErr(errcode.ErrorCodeUnsupported, "this proxy is read-only")
	}
	d, err := parseDigest(mux.Vars(r)["digest"])
	if err != nil {
		return err
	}
	return p.forward(w, r, t, forwardOpts{
		path:      "/v2/" + t.repo + "/blobs/" + d.String(),
		scopes:    []string{upstream.Scope(t.repo, "delete")},
		onSuccess: func() { p.dropContent(r.Context(), t, content.Blob, d) },
	})
}

// startUpload passes POST /v2/<name>/blobs/uploads/ through (distribution
// spec "Pushing blobs"), including cross-repository mounts: the `from`
// repository is mapped to its upstream name when it lives on the same
// upstream; otherwise the mount is dropped and upstream starts a plain
// upload session, as the spec allows.
func (p *Proxy) startUpload(w http.ResponseWriter, r *http.Request, t target) error {
	if p.o.ReadOnly {
		return apiErr(errcode.ErrorCodeUnsupported, "this proxy is read-only")
	}
	q := r.URL.Query()
	if d := q.Get("digest"); d != "" {
		if _, err := parseDigest(d); err != nil {
			return err
		}
	}
	scopes := []string{upstream.Scope(t.repo, "pull", "push")}
	if mount, from := q.Get("mount"), q.Get("from"); mount != "" || from != "" {
		if _, err := parseDigest(mount); err != nil {
			return err
		}
		src, err := p.target(from, t.ns)
		if err == nil && src.up == t.up && p.mayMountFrom(r, src.canonical()) {
			q.Set("from", src.repo)
			scopes = append(scopes, upstream.Scope(src.repo, "pull"))
		} else {
			q.Del("mount")
			q.Del("from")
		}
	}
	query := q.Encode()
	return p.forward(w, r, t, forwardOpts{path: "/v2/" + t.repo + "/blobs/uploads/", query: &query, scopes: scopes})
}

// upload passes the rest of an upload session through: GET (status), PATCH
// (chunks, streamed), PUT (close), DELETE (cancel). The session URL is
// upstream's, with the repository mapped; its query (state) is kept.
func (p *Proxy) upload(w http.ResponseWriter, r *http.Request, t target) error {
	if p.o.ReadOnly {
		return apiErr(errcode.ErrorCodeUnsupported, "this proxy is read-only")
	}
	id := mux.Vars(r)["uuid"]
	if id == "" || strings.ContainsAny(id, "/?#") || id != url.PathEscape(id) {
		return apiErr(errcode.ErrorCodeBlobUploadInvalid, "invalid upload session %q", id)
	}
	return p.forward(w, r, t, forwardOpts{
		path:   "/v2/" + t.repo + "/blobs/uploads/" + id,
		scopes: []string{upstream.Scope(t.repo, "pull", "push")},
	})
}
