// Package e2e proves manifold with the clients users actually run.
//
// Unit and integration tests elsewhere check what the proxy sends; this
// suite checks what real clients make of it. Each client resolves tags,
// Accept headers, digests and platforms its own way — containerd HEADs a
// tag and then GETs by digest with one comma-joined Accept header; dockerd
// sends several Accept lines in random order; podman, skopeo, crane, regctl
// and oras GET by tag — and only the real binaries prove that every one of
// them gets the image that was pushed for its platform.
//
// The suite (package e2e_test) runs in `go test ./...`:
//
//   - the upstream is distribution v3 in the test process (embedded.Start,
//     filesystem storage in a temp dir);
//   - the proxy is the real `proxy serve` binary, built once per run and
//     started as a child process in front of it (and again, fresh, where a
//     test needs "another replica");
//   - fixtures are seeded upstream with go-containerregistry: for 8 linux
//     platforms and windows/amd64, a one-layer image whose layer holds a
//     file /platform naming its platform (Files/platform in Windows layer
//     layout), pushed as <base>-<os>-<arch>[-<variant>] tags — once with
//     Docker media types (→ a Docker manifest list; arm64 tagged
//     1.4-linux-arm64) and once with OCI media types (→ an OCI index; arm64
//     tagged 1.4-oci-linux-arm64-v8) — plus two real upstream indexes (one
//     whose arm64 entry says variant v8, one whose arm64 entry has none)
//     and plain tags that must pass through byte-identical;
//   - one test per client (TestDocker, TestContainerd, TestPodman,
//     TestSkopeo, TestCrane, TestRegctl, TestOras) asks for every platform
//     through the proxy, under every spelling a user types for it
//     (linux/arm64 and linux/arm64/v8, linux/arm and linux/arm/v7,
//     linux/amd64 and linux/amd64/v1: the spelling matrix,
//     spelling_test.go), and checks the manifest digest, the config (digest
//     and platform) and the content of the baked-in file; a spelling the
//     client's own matcher cannot find in the bytes (crane and oras match a
//     requested variant exactly) must fail with the client's "no match"
//     error; TestConformance runs the OCI distribution-spec conformance
//     suite against the upstream alone and through the proxy and requires
//     the proxy to pass everything the upstream passes;
//   - TestContentCacheOutage has every client pull two platforms through a
//     proxy in front of an upstream of its own, warm, then with that
//     upstream down, then answering 429 to manifest requests: the content
//     cache serves them whole, by tag and by digest, without an upstream
//     request for what it holds;
//   - TestScaleOut runs three `proxy serve` replicas behind a real HAProxy
//     (round robin), sharing a real Redis (tag cache, fleet-wide locks) and
//     an S3-API server (versitygw: index store and content cache), in
//     front of an upstream of its own: the replicas serve the same index
//     bytes and each other's digests (also after a member is re-pushed, and
//     from a replica started after), a cold 300-GET burst costs the
//     upstream one tag list and one read per member, content one replica
//     pulled is served by another with the upstream stopped, pulls go on
//     with Redis stopped, pulls pass through with S3 stopped (each replica
//     warning about it), a chunked upload spread over the replicas lands
//     intact upstream, and crane, regctl, skopeo, oras, ctr, dockerd and
//     podman pull every platform (and crane copies an image in) through
//     the load balancer;
//   - TestQuickstart runs the README's quickstart block as written, with
//     bash -e, in a fresh copy of the repository (its own proxy on
//     127.0.0.1:5000, crane, and docker against a private dockerd), and
//     checks what its commands printed.
//
// Daemons (dockerd, containerd) are started privately with their own
// directories and sockets, and every process the suite starts is stopped by
// its PID (SIGTERM, then SIGKILL after a grace period) when its test ends,
// also on failure. Client state (DOCKER_CONFIG, REGCTL_CONFIG, HOME, podman
// storage, the containers/image blob-info cache) lives in temp dirs.
//
// A client that is not installed is skipped with a message naming the
// install command (.ci/install-deps installs them all); with CI=true a
// missing client fails the test instead, so CI cannot go green by skipping.
package e2e
