// Package embedded runs distribution v3, the reference registry, inside the
// manifold process as its default upstream: `proxy serve` with no upstream
// configured is then a complete multi-platform registry on a fresh machine.
// The proxy talks to it over HTTP like to any upstream, so there is one code
// path. A private registry (Options.Private, what `proxy serve` starts)
// listens on no address at all: its connections are made in memory through
// Registry.Transport, so no other process can read it or push into
// repositories the proxy's access rules reserve. Tests start it on a
// loopback port instead, as the real upstream of a proxy process.
//
// [Start] runs it on a data directory (filesystem storage), or in memory
// when none is given, with deletes enabled so that migrate can untag, and
// optionally behind htpasswd. Tests use it as the real upstream: Options.Wrap
// puts a handler in front of it to count requests or inject faults.
package embedded
