package tlsreload_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/tlsreload"
)

// start serves with a Reloader of o that checks the files every 10 ms and
// logs to the returned log.
func start(t *testing.T, o tlsreload.Options) (*tlsreload.Reloader, string, *regtest.Log) {
	t.Helper()
	logs := &regtest.Log{}
	o.Interval, o.Logger = 10*time.Millisecond, logs.Logger()
	r, err := tlsreload.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return r, serve(t, r), logs
}

// serve serves "ok" over TLS with r's configuration on a loopback port
// until the test ends, as `proxy serve` does (http.Server.ServeTLS).
func serve(t *testing.T, r *tlsreload.Reloader) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		TLSConfig: r.Config(),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "ok")
		}),
		ErrorLog: log.New(io.Discard, "", 0), // the refused handshakes
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// handshake connects to addr trusting ca and returns the certificate the
// server presented, or the handshake's error.
func handshake(addr string, ca *regtest.CA, cfg *tls.Config) (*x509.Certificate, error) {
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg.RootCAs = ca.Pool()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	// With TLS 1.3 the server's verdict on a client certificate arrives
	// after the client's side of the handshake: read to see it.
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, err
	}
	return c.ConnectionState().PeerCertificates[0], nil
}

// waitServed handshakes with addr until it presents the certificate
// whose serial is want's, for at most five seconds.
func waitServed(t *testing.T, addr string, ca *regtest.CA, want *x509.Certificate) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := handshake(addr, ca, nil)
		if err == nil && got.SerialNumber.Cmp(want.SerialNumber) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5s the server still presents %v (%v), want serial %x", serialOf(got), err, want.SerialNumber)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func serialOf(c *x509.Certificate) string {
	if c == nil {
		return "nothing"
	}
	return "serial " + c.SerialNumber.Text(16)
}

// TestNewRefusesBadFiles: a missing, unreadable, empty or mismatched pair
// is refused at start with one line naming the file at fault.
func TestNewRefusesBadFiles(t *testing.T) {
	t.Parallel()
	ca := regtest.NewCA(t)
	dir := t.TempDir()
	cert, key, _ := ca.Issue(t, dir, "a", "127.0.0.1")
	_, otherKey, _ := ca.Issue(t, dir, "b", "127.0.0.1")
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	for _, c := range []struct {
		name string
		o    tlsreload.Options
		want string
	}{
		{"no certificate", tlsreload.Options{Key: key}, "certificate: required"},
		{"no key", tlsreload.Options{Certificate: cert}, "key: required"},
		{"missing certificate", tlsreload.Options{Certificate: missing, Key: key}, "certificate: stat " + missing + ": no such file or directory"},
		{"missing key", tlsreload.Options{Certificate: cert, Key: missing}, "key: stat " + missing + ": no such file or directory"},
		{"unreadable key", tlsreload.Options{Certificate: cert, Key: dir}, "key: read " + dir + ": is a directory"},
		{"certificate not PEM", tlsreload.Options{Certificate: garbage, Key: key}, "certificate: " + garbage + " holds no PEM certificate"},
		{"key not PEM", tlsreload.Options{Certificate: cert, Key: garbage}, "key: " + garbage + " holds no PEM private key"},
		{"key is a certificate", tlsreload.Options{Certificate: cert, Key: cert}, "key: " + cert + " holds no PEM private key"},
		{"mismatched pair", tlsreload.Options{Certificate: cert, Key: otherKey}, "key: " + otherKey + " is not the key of certificate " + cert},
		{"client CAs not PEM", tlsreload.Options{Certificate: cert, Key: key, ClientCAs: garbage}, "clientCAs: " + garbage + " holds no PEM certificate"},
		{"client CAs missing", tlsreload.Options{Certificate: cert, Key: key, ClientCAs: missing}, "clientCAs: stat " + missing},
	} {
		_, err := tlsreload.New(c.o)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want one line starting %q", c.name, err, c.want)
		}
	}
}

// TestRotation: a certificate replaced on disk is served to new
// connections, over HTTP/2; a connection opened before keeps the
// certificate it shook hands with and goes on serving requests.
func TestRotation(t *testing.T) {
	t.Parallel()
	ca := regtest.NewCA(t)
	dir := t.TempDir()
	certPath, keyPath, first := ca.Issue(t, dir, "tls", "127.0.0.1")
	r, addr, logs := start(t, tlsreload.Options{Certificate: certPath, Key: keyPath})
	old := &http.Client{Transport: ca.Transport()}
	get := func(c *http.Client) *http.Response {
		t.Helper()
		resp, err := c.Get("https://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	resp := get(old)
	if resp.Proto != "HTTP/2.0" || resp.TLS.PeerCertificates[0].SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatalf("first request: %s, serial %x; want HTTP/2.0 and serial %x", resp.Proto, resp.TLS.PeerCertificates[0].SerialNumber, first.SerialNumber)
	}

	_, _, second := ca.Issue(t, dir, "tls", "127.0.0.1") // rewritten in place
	waitServed(t, addr, ca, second)
	if got := r.Leaf().SerialNumber; got.Cmp(second.SerialNumber) != 0 {
		t.Errorf("Leaf: serial %x, want %x", got, second.SerialNumber)
	}
	// The connection opened before the rotation is still up, with the
	// first certificate.
	resp = get(old)
	if resp.TLS.PeerCertificates[0].SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Errorf("the connection opened before the rotation changed certificate (serial %x)", resp.TLS.PeerCertificates[0].SerialNumber)
	}
	fresh := &http.Client{Transport: ca.Transport()}
	if resp := get(fresh); resp.TLS.PeerCertificates[0].SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Errorf("a new connection got serial %x, want %x", resp.TLS.PeerCertificates[0].SerialNumber, second.SerialNumber)
	}
	if !strings.Contains(logs.String(), "TLS certificate reloaded") {
		t.Errorf("no reload logged:\n%s", logs.String())
	}
}

// TestHalfWrittenPair: a certificate written before its key does not
// load; the current pair is served (one warning) until the key arrives.
func TestHalfWrittenPair(t *testing.T) {
	t.Parallel()
	ca := regtest.NewCA(t)
	dir, next := t.TempDir(), t.TempDir()
	certPath, keyPath, first := ca.Issue(t, dir, "tls", "127.0.0.1")
	_, addr, logs := start(t, tlsreload.Options{Certificate: certPath, Key: keyPath})
	newCert, newKey, second := ca.Issue(t, next, "tls", "127.0.0.1")
	copyFile(t, newCert, certPath) // the certificate only
	for range 10 {
		time.Sleep(15 * time.Millisecond)
		got, err := handshake(addr, ca, nil)
		if err != nil || got.SerialNumber.Cmp(first.SerialNumber) != 0 {
			t.Fatalf("with a half-written pair: %v, %v; want the first certificate", serialOf(got), err)
		}
	}
	if n := strings.Count(logs.String(), "do not load"); n != 1 {
		t.Errorf("%d warnings for one half-written pair, want 1:\n%s", n, logs.String())
	}
	copyFile(t, newKey, keyPath)
	waitServed(t, addr, ca, second)
}

// TestSecretVolumeSwap: a Kubernetes Secret volume replaces its files by
// swapping the ..data symlink the file names point through; the new
// certificate is served.
func TestSecretVolumeSwap(t *testing.T) {
	t.Parallel()
	ca := regtest.NewCA(t)
	vol := t.TempDir()
	version := func(name string) *x509.Certificate {
		d := filepath.Join(vol, name)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		c, k, cert := ca.Issue(t, d, "tls", "127.0.0.1")
		if err := os.Rename(c, filepath.Join(d, "tls.crt")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(k, filepath.Join(d, "tls.key")); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(vol, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(vol, "..data")); err != nil {
			t.Fatal(err)
		}
		return cert
	}
	first := version("..2025_01_01_v1")
	for _, f := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(vol, f)); err != nil {
			t.Fatal(err)
		}
	}
	_, addr, _ := start(t, tlsreload.Options{Certificate: filepath.Join(vol, "tls.crt"), Key: filepath.Join(vol, "tls.key")})
	waitServed(t, addr, ca, first)
	waitServed(t, addr, ca, version("..2025_02_01_v2"))
}

// TestMutualTLS: with client CAs, a client without a certificate, or with
// one from another CA, is refused at the handshake; one with a
// certificate of the CA gets in. The CA file is reloaded like the pair.
func TestMutualTLS(t *testing.T) {
	t.Parallel()
	ca, other := regtest.NewCA(t), regtest.NewCA(t)
	dir := t.TempDir()
	certPath, keyPath, _ := ca.Issue(t, dir, "server", "127.0.0.1")
	cas := ca.WriteCert(t, filepath.Join(dir, "clients.pem"))
	_, addr, _ := start(t, tlsreload.Options{Certificate: certPath, Key: keyPath, ClientCAs: cas})
	client := func(ca *regtest.CA, name string) *tls.Config {
		c, k, _ := ca.Issue(t, dir, name, name)
		pair, err := tls.LoadX509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		return &tls.Config{Certificates: []tls.Certificate{pair}}
	}
	if _, err := handshake(addr, ca, nil); err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Errorf("no client certificate: %v, want the handshake refused (certificate required)", err)
	}
	if _, err := handshake(addr, ca, client(other, "stranger")); err == nil || !strings.Contains(err.Error(), "unknown certificate authority") {
		t.Errorf("a certificate of another CA: %v, want the handshake refused (unknown certificate authority)", err)
	}
	if _, err := handshake(addr, ca, client(ca, "node-1")); err != nil {
		t.Errorf("a certificate of the CA: %v", err)
	}
	// Rotate the client CAs to the other CA: its clients get in now.
	other.WriteCert(t, cas)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := handshake(addr, ca, client(other, "stranger")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the rotated client CAs were not loaded")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMinVersion: a client that offers less than MinVersion is refused.
func TestMinVersion(t *testing.T) {
	t.Parallel()
	ca := regtest.NewCA(t)
	certPath, keyPath, _ := ca.Issue(t, t.TempDir(), "tls", "127.0.0.1")
	for _, c := range []struct {
		min, client uint16
		ok          bool
	}{
		{0, tls.VersionTLS12, true}, // default 1.2
		{0, tls.VersionTLS11, false},
		{tls.VersionTLS13, tls.VersionTLS12, false},
		{tls.VersionTLS13, tls.VersionTLS13, true},
	} {
		r, err := tlsreload.New(tlsreload.Options{Certificate: certPath, Key: keyPath, MinVersion: c.min})
		if err != nil {
			t.Fatal(err)
		}
		_, err = handshake(serve(t, r), ca, &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: c.client})
		if (err == nil) != c.ok {
			t.Errorf("server min %x, client max %x: %v", c.min, c.client, err)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
