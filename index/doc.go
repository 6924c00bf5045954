// Package index is manifold's tag grammar, grouping and index synthesis.
//
// Teams that could not publish multi-platform images pushed one tag per
// platform: app:1.4-linux-amd64, app:1.4-linux-arm64, app:1.4-linux-arm-v7.
// This package reads those tags ([Grammar.Parse]: the platform is taken from
// the right, and only real os/arch/variant words count), groups them under
// their base ("1.4"), and turns the resolved members into an OCI image index
// or Docker manifest list ([Synthesize]) whose bytes depend only on the
// members' content: the same members give the same bytes and digest in every
// process, replica and release.
//
// How entries are written:
//   - os/arch come from the image config and must match the tag;
//   - the variant comes from the config, else from the tag; platforms are
//     compared as containerd compares them (arm64 ≡ arm64/v8, arm ≡ arm/v7,
//     amd64 ≡ amd64/v1) and written so that every client's matcher finds
//     them under every spelling ([Normalize]): arm64 with "v8" (or the later
//     variant stated), arm always with its variant, amd64 v1 with none;
//   - os.version and os.features come from the config;
//   - entries are sorted by (os, arch, variant, os.version, os.features,
//     digest), each architecture's default variant first (arm/v7 before
//     arm/v6: clients that take the first entry for `linux/arm` get v7),
//     each attestation manifest right after the image it refers to;
//   - the encoding is compact JSON with fixed field order ([Encode]).
//
// The package does no I/O: callers resolve members (HEAD, manifest, config)
// and pass the facts in. It imports no net/http.
package index
