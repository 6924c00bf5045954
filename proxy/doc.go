// Package proxy is manifold's registry front-end: an [http.Handler] that
// speaks the OCI distribution API to clients and to one or more upstream
// registries, and answers one question differently from them.
//
// What is in a tag? Upstream, app:1.4-linux-amd64 and app:1.4-linux-arm64
// are two unrelated images, and app:1.4 may not exist at all. Through the
// proxy, app:1.4 is a multi-platform index of them, so `docker pull
// app:1.4` gets the right image on every machine. Everything else is the
// upstream's, passed through.
//
// # Routes
//
// A request's repository picks its upstream by path prefix ([Upstream]:
// under the prefix "hub", repository "hub/library/nginx" is "library/nginx"
// upstream; the default upstream has the prefix ""), or, for a runtime that
// uses the proxy as a registry mirror, by the registry the image is from
// (mirror.go: containerd's ?ns=ghcr.io goes to the upstream whose
// [Upstream].MirrorOf lists ghcr.io, under ghcr.io's name for the
// repository; an ns nobody mirrors is 404 NAME_UNKNOWN). One file serves each
// resource, and the handlers cite the sections of the distribution spec
// they implement
// (https://github.com/opencontainers/distribution-spec/blob/main/spec.md):
//
//	GET /v2/                                   proxy.go: 200 {} (end-1)
//	GET, HEAD /v2/<name>/manifests/<ref>       manifests.go (end-3)
//	PUT, DELETE /v2/<name>/manifests/<ref>     manifests.go (end-7, end-9)
//	GET, HEAD /v2/<name>/blobs/<digest>        blobs.go (end-2)
//	POST, ... /v2/<name>/blobs/uploads/...     blobs.go (end-4 to end-6, end-11, end-13)
//	GET /v2/<name>/tags/list                   tags.go (end-8)
//	GET /v2/<name>/referrers/<digest>          referrers.go (end-12)
//	GET /v2/_catalog                           catalog.go (Docker's API, not in the spec)
//	/healthz, /readyz, /metrics                proxy.go, metrics.go
//
// # Synthesized
//
// A bare tag B with member tags upstream (B-<os>-<arch>[-<variant>], package
// index's grammar) gets the index that package resolve builds from the
// members and package index encodes: deterministic bytes, so every replica
// and every release serves the same digest for the same members. Whether
// it does is decided in one place, resolve.Resolver.Resolve, under the
// repository's rule (bare-tag policy, required platforms); the handler acts
// on its outcome: pass through, write the index, or say why there is
// nothing to serve.
//
// The client's Accept header (one comma-joined line or several, with
// q-values, [ParseAccept]) chooses the form: the index when its media type
// is accepted (or no Accept is sent); else the default platform's image,
// as the reference registry does for clients that cannot read lists;
// else 404 MANIFEST_UNKNOWN. HEAD and GET send identical headers, and the
// body is exactly the bytes that were hashed.
//
// An index is also served by digest, from any replica: the store
// ([github.com/manifold-proxy/manifold/store]) keeps what was served, and a
// replica that never served a digest, and whose upstream lacks it, asks
// resolve.Resolver.FindIndex (bounded in groups searched and in time)
// which bare tag serves it before it gives up. tags/list adds the bare
// tags the proxy synthesizes to upstream's (all pages, paginated again),
// and the referrers of a synthesized index are an empty list: nothing was
// ever pushed with it as subject.
//
// # Passed through
//
// Member tags, referrer fallback tags (sha256-<hex>.sig), manifests by
// digest that upstream has, blobs (streamed without buffering, Range and
// 206 kept; upstream redirects followed, or handed to the client when
// Options.FollowRedirects is false), the catalog, and pushes and deletes
// (refused with UNSUPPORTED when Options.ReadOnly; a manifest over
// Options.MaxManifestBytes is refused with 413 before any byte reaches the
// upstream). A manifest write invalidates the cached tags of its
// repository. Location and Link headers are rewritten to the proxy's names;
// the client's credentials are never forwarded, the upstream client adds
// the proxy's own. A request with upstream.HeaderSynthesis: off sees
// upstream's view, as inspect and migrate need.
//
// # Errors
//
// Handlers return errors; one wrapper writes the OCI error envelope
// (errors.go, spec "Error Codes") and logs and counts the request once.
// Upstream answers keep their status and codes (MANIFEST_UNKNOWN stays
// MANIFEST_UNKNOWN); one without an envelope (a bare 503, a text/plain 404
// from a load balancer) gets one whose code follows the status. A 401 for
// the proxy's own credentials becomes a 403 naming the cause: logging in to
// the proxy cannot fix it. No answer at all (refused, reset, timed out) is
// 502 UNAVAILABLE. A bare tag whose members are all excluded, or that lacks
// a required platform, is 404 MANIFEST_UNKNOWN with a detail naming the
// tags and why. Every 429 and 5xx carries a Retry-After, and no message
// carries an upstream URL's signature or state token (upstream.Redact).
//
// # Access
//
// Client access ([Access]: distribution's access controllers, htpasswd or
// token, with per-repository read and write rules) is checked by the same
// wrapper before any handler runs, /v2/ included: its challenge is how a
// client learns to log in. Rules and bare-tag policies match a
// repository's canonical name (its prefix and upstream path), so every
// spelling of one repository (hub/nginx, hub/library/nginx) meets the same
// rule.
package proxy
