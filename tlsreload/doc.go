// Package tlsreload is the proxy's server side of TLS: a tls.Config whose
// certificate, key and client CAs come from PEM files that may change on
// disk while the proxy serves — cert-manager renewing a certificate, a
// Kubernetes Secret volume swapping its files — so a rotation needs no
// restart and drops no connection.
//
// Each handshake asks for the current configuration (GetConfigForClient).
// At most once per Interval, that handshake first compares the files'
// identity (device, inode, size, modification time: os.Stat follows the
// symlinks a Secret volume swaps) with the ones last loaded; when one
// changed, the files are read again, and a pair that loads replaces the
// served one. Connections already open keep the certificate they shook
// hands with; new ones get the new. A pair that does not load (a
// certificate written before its key, a half-written file) is logged and
// the current one kept, until the files change again. A poll on the
// handshake path, rather than a watcher, needs no goroutine, works on
// every filesystem and volume type, and costs three stat calls a second
// at most.
//
// New reads the files once and fails with an error naming the file and
// what is wrong with it (missing, unreadable, no PEM, a key that is not
// the certificate's), so a bad pair stops the proxy at start, not at the
// first client.
package tlsreload
