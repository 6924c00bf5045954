// Package migrate is what `proxy inspect` and `proxy migrate` do: look at a
// repository full of per-platform tags the way the proxy does, and write the
// indexes the proxy serves into the registry itself, byte for byte.
//
// [Migrator.Inspect] resolves every base of a repository with the proxy's own
// [resolve.Resolver] and policies, and returns a [Plan]: the matrix of
// bases × platforms, what each bare tag holds, what the proxy serves for it,
// the members that were left out and why, and what a migration would do.
//
// [Migrator.Migrate] carries out that plan. For each base it PUTs the exact
// bytes of the synthesized index under the bare tag — the digest is the one
// the proxy served, so every `app@sha256:…` pinned through the proxy keeps
// resolving once the proxy is gone. It reads the index back and compares the
// bytes before it touches anything else, and with pruning it only untags
// suffixed tags whose manifests the verified index references: nothing a
// digest points at becomes unreachable.
//
// A bare tag that already holds a real index is left alone (the proxy passes
// it through too) unless it is forced; one that holds exactly what migrate
// would write is "unchanged", so running a migration twice changes nothing.
package migrate
