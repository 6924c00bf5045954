// Package resolve turns a group of per-platform tags into a synthesized
// index: it lists the repository's tags, resolves each member with a HEAD
// (cheap, and not counted as a pull by Docker Hub), reads manifests and
// configs by digest only when their facts are not cached yet (they never
// change), flattens member indexes, and hands the facts to package index.
//
// It reads through a [Source]; [NewCache] wraps a Source with TTLs for the
// mutable answers (tag lists, tag → descriptor), stale-while-revalidate,
// stale-if-error, and one fetch per key at a time. The proxy, `inspect` and
// `migrate` all use the same [Resolver], which is why `migrate` writes the
// very bytes the proxy served.
package resolve
