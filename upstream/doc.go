// Package upstream is manifold's client for one upstream registry: an
// authenticated, retrying HTTP transport per repository scope (token auth
// as Docker Hub and other registries do it, via go-containerregistry's
// transport), plus the reads that synthesis needs (tags, HEAD, manifests
// and configs by digest) through go-containerregistry's remote.Puller.
//
// Transports are cached per scope, so a token is fetched once per repository
// and refreshed by the transport itself when it expires. Retries apply only
// to requests without a body (GET, HEAD): 429, 502, 503 and 504 and network
// errors are retried with backoff, honoring Retry-After.
package upstream
