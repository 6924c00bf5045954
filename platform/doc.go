// Package platform is everything manifold knows about OCI platforms
// (os/arch/variant), in one place: which pairs exist ([Known], the pairs of
// `go tool dist list`, the set OCI takes its values from), which variants
// are real ([ValidVariant]), how spellings map to one value ([Normalize],
// [NormalizeArch], [Alias]), how they are parsed and printed ([Parse],
// [String]), compared ([Same], [Key]), ordered ([Less]) and which CPU runs
// which image ([RunsOn]).
//
// Comparison follows containerd: arm64 ≡ arm64/v8, arm ≡ arm/v7, amd64 ≡
// amd64/v1. The written form is chosen for the clients whose matchers are
// exact (go-containerregistry, oras-go): arm64 entries carry "v8", arm
// entries always carry their variant, amd64 v1 none — so `--platform
// linux/arm64` and `--platform linux/arm64/v8` both find an arm64 image in
// every client. The written form is part of every synthesized index's
// bytes, hence of its digest: it never changes.
//
// The package is pure: it imports the standard library and
// go-containerregistry's v1 types only, and every other package of manifold
// that compares, orders or prints platforms goes through it.
package platform
