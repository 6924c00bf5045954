// Package crossbuild is `proxy build`: a daemonless cross-build and push of one
// image per platform for a Go main package, under the suffixed tags the
// proxy groups (<tag>-<os>-<arch>[-<variant>], package index's grammar).
//
// [Run] works in phases, and pushes nothing until every platform has
// compiled:
//
//  1. Validate: platforms are parsed with index's grammar and refused when
//     no container runtime runs them (darwin, js, plan9...) or Go cannot
//     build them (arm/v8); windows needs a Windows base image.
//  2. Bases: each base reference is read once; a multi-platform base is
//     resolved to the child for each platform.
//  3. Compile: `go build` per platform with CGO_ENABLED=0, GOOS, GOARCH and
//     the variant as GOARM (arm v5–v7), GOAMD64 (amd64 v1–v4) or GOARM64
//     (arm64 v8.x/v9.x), into a per-platform directory that persists
//     between runs: an up-to-date binary is neither relinked nor
//     recompressed.
//  4. Pack: one layer with the binary at /<name> (Windows: C:\<name>.exe,
//     under the layer's Files/ with an empty Hives/) and the --add files;
//     entries sorted, owned by 0:0, with fixed modes and one mtime
//     (SOURCE_DATE_EPOCH, else 1970-01-01), gzip without header
//     timestamps. The config has the platform (variant included), the
//     binary as entrypoint and no creation time. The same source and
//     options give the same digests.
//  5. Index: computed by index.Synthesize from the images' facts, the same
//     function the proxy runs on the same facts, so its digest is the one
//     the proxy serves for the bare tag.
//  6. Push: images by digest (blobs the registry has are skipped, shared
//     ones sent once), then the tags, then, if asked, the index under each
//     bare tag. An image whose tags already name its digest is
//     "unchanged" and nothing is sent for it.
//
// Images are OCI unless the base is a Docker schema 2 image, whose media
// types are kept so a manifest never mixes the two.
package crossbuild
