// Package content is manifold's pull-through content cache: the immutable
// things a client fetches by digest — blobs (layers, configs) and manifests
// by digest (children of an index, anything pulled by digest) — kept in a
// distribution storage driver exactly as they were served, so that what a
// fleet pulled once keeps pulling when the upstream is down, slow or
// rate-limited.
//
// A cold blob is fetched once for all who ask at the same time (a Fill):
// the fill spools the upstream's bytes to a local file that every waiting
// client reads as it grows, so the first byte reaches the first client as
// soon as the upstream sends it; the digest is checked before anything is
// committed, and each client's last byte is held back until it is, so a
// client of an upstream that sent other bytes sees a broken transfer, never
// a complete one. A fill that every client left is cancelled, and nothing
// of it is kept.
//
// Content is stored once per digest, whatever repository it came through.
// Serving it through a repository is a separate question, answered by
// confirmations: a record, per (upstream, repository, kind, digest), that
// the upstream said this repository has it (its answer to a GET or a HEAD).
// The cache keeps them; the proxy asks the upstream when there is none, so
// a digest fetched through one repository never leaks through another that
// does not hold it.
//
// The stored bytes are bounded (Options.MaxBytes) with least-recently-used
// eviction. The index of what is held is rebuilt from the driver on start,
// in the order of the recency list written at the last Close (then by
// modification time), so a restart keeps the cache and roughly its order.
//
// Layout on the driver (paths as distribution's drivers write them):
//
//	/manifold/content/v1/blobs/<alg>/<hex[:2]>/<hex>       blob bytes, exactly
//	/manifold/content/v1/manifests/<alg>/<hex[:2]>/<hex>   "<media type>\n" + manifest bytes
//	/manifold/content/v1/repositories/<host>/<repo>/_blobs/<alg>/<hex>      confirmation (empty)
//	/manifold/content/v1/repositories/<host>/<repo>/_manifests/<alg>/<hex>  confirmation (empty)
//	/manifold/content/v1/_uploads/<name>                   fills under way (local spools)
//	/manifold/content/v1/recency                           kind and digest per line, oldest first
package content
