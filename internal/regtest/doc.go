// Package regtest is the test fixtures that several packages' tests share,
// so that each is written once:
//
//   - [Registry]: a real registry (distribution v3 in process, or any
//     handler such as go-containerregistry's registry.New()) whose
//     ServeHTTP is wrapped to log every request, add latency and inject
//     faults ([Fault], [Refuse]); call-counting spies prove caching with
//     it, and fault tests break the real upstream rather than a fake.
//   - [PlatformImage] and [BuildxIndex]: small random images for a
//     platform, and the index buildx pushes for one.
//   - [StartProxy]: a manifold proxy served until the test ends.
//   - [Get], [Do] and [DoWith]: one HTTP request, body read and closed.
//   - [Log]: a log that servers write while the test reads it.
//   - [Htpasswd]: an htpasswd file for auth tests.
//   - [StartRedis], [StartS3] and [StartHAProxy]: real redis-server,
//     versitygw (an S3-API server) and HAProxy processes of the test's
//     own, on free loopback ports, stopped by PID when it ends.
//   - [NewCA]: a certificate authority made in the test, which issues
//     server and client certificates for TLS tests.
//
// Only tests import it.
package regtest
