package e2e_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestTLSRotation: the proxy's certificate is replaced on disk (in place,
// certificate then key, as a copy or a naive script does it) while a
// 32 MiB blob is being downloaded over TLS. New connections get the new
// certificate within seconds, a real client pulls through one, and the
// download in flight — on its connection with the old certificate —
// completes with the right digest.
func TestTLSRotation(t *testing.T) {
	s := shared(t)
	px := s.startTLSProxy(t, "tls-rotation", false)
	blob := make([]byte, 32<<20)
	if _, err := rand.Read(blob); err != nil {
		t.Fatal(err)
	}
	repo, err := name.NewRepository(s.upHost+"/e2e/rotation", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteLayer(repo, static.NewLayer(blob, types.DockerLayer)); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(blob)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	first := served(t, px, nil)

	resp, err := px.client.Get("https://" + px.host + "/v2/e2e/rotation/blobs/" + digest)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, resp.Body, 1<<20); err != nil {
		t.Fatalf("the first MiB of the blob: %v", err)
	}

	start := time.Now()
	_, _, second := px.ca.Issue(t, px.dir, "tls", "127.0.0.1", "localhost")
	for served(t, px, nil).SerialNumber.Cmp(second.SerialNumber) != 0 {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("10s after the rotation new connections still get serial %x, want %x", first.SerialNumber, second.SerialNumber)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("new connections got the rotated certificate %s after it was written", time.Since(start).Round(time.Millisecond))
	crane := requireTool(t, "crane", hintCrane)
	fresh := run(t, command{bin: crane, args: []string{"manifest", px.host + "/" + repoFor("crane") + ":" + s.fx.groups[0].base}, env: s.env("SSL_CERT_FILE=" + px.caFile)})
	if _, want := px.get(t, http.MethodGet, "/v2/"+repoFor("crane")+"/manifests/"+s.fx.groups[0].base); !bytes.Equal(fresh, want) {
		t.Errorf("crane manifest after the rotation: not the index the proxy serves")
	}

	n, err := io.Copy(h, resp.Body)
	if err != nil || n != int64(len(blob))-1<<20 {
		t.Fatalf("the download in flight during the rotation: %d more bytes, %v", n, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		t.Errorf("the download in flight during the rotation hashes to %s, want %s", got, digest)
	}
	if got := resp.TLS.PeerCertificates[0].SerialNumber; got.Cmp(first.SerialNumber) != 0 {
		t.Errorf("the download's connection presented serial %x, want the first certificate's %x", got, first.SerialNumber)
	}
	if logs, _ := os.ReadFile(px.log); !bytes.Contains(logs, []byte("TLS certificate reloaded")) {
		t.Errorf("the proxy did not log the reload")
	}
}

// served handshakes with the proxy on a new connection (with cfg, trusting
// its CA) and returns the certificate it presented.
func served(t *testing.T, px *tlsProxy, cfg *tls.Config) *x509.Certificate {
	t.Helper()
	c, err := dialTLS(px, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

func dialTLS(px *tlsProxy, cfg *tls.Config) (*tls.Conn, error) {
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg.RootCAs = px.ca.Pool()
	return tls.Dial("tcp", px.host, cfg)
}

// TestMutualTLS: with tls.clientCAs, a client without a certificate is
// refused at the handshake — curl fails, crane says "certificate
// required", the proxy logs the refused handshakes, and no request
// reaches its handlers — while curl and skopeo with a certificate of the
// CA get in.
func TestMutualTLS(t *testing.T) {
	curl := requireTool(t, "curl", hintCurl)
	crane := requireTool(t, "crane", hintCrane)
	skopeo := requireTool(t, "skopeo", hintSkopeo)
	s := shared(t)
	px := s.startTLSProxy(t, "mtls", true)
	mark := len(px.requests())
	url := "https://" + px.host + "/v2/"
	// With TLS 1.3 the server's verdict on the client's certificate comes
	// after the client's half of the handshake: curl sees the alert or a
	// reset, depending on timing; it fails either way.
	if _, _, err := (command{bin: curl, args: []string{"-sS", "--cacert", px.caFile, url}, env: s.env()}).output(); err == nil {
		t.Error("curl without a client certificate got in")
	}
	c := command{bin: crane, args: []string{"manifest", px.host + "/" + repoFor("crane") + ":1.4"}, env: s.env("SSL_CERT_FILE=" + px.caFile)}
	if _, _, err := c.output(); err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Errorf("%s without a client certificate: %v, want the handshake refused (certificate required)", c, err)
	}
	if n := len(px.requests()) - mark; n != 0 {
		t.Errorf("%d requests without a client certificate reached the proxy", n)
	}
	if logs, _ := os.ReadFile(px.log); bytes.Count(logs, []byte("client didn't provide a certificate")) < 2 {
		t.Errorf("the proxy did not log the two refused handshakes:\n%s", logs)
	}

	dir := s.tempDir(t, "mtls")
	out := run(t, command{bin: curl, args: []string{"-sS", "--http2", "--cacert", px.caFile, "--cert", filepath.Join(px.dir, "client.crt"), "--key", filepath.Join(px.dir, "client.key"),
		"-o", "/dev/null", "-w", "%{http_code} HTTP/%{http_version}", url}, env: s.env()})
	if string(out) != "200 HTTP/2" {
		t.Errorf("curl with a client certificate: %q, want 200 over HTTP/2", out)
	}
	// containers/image's certificate directory: ca.crt, client.cert, client.key.
	certs := filepath.Join(dir, "certs")
	for from, to := range map[string]string{"ca.crt": "ca.crt", "client.crt": "client.cert", "client.key": "client.key"} {
		b, err := os.ReadFile(filepath.Join(px.dir, from))
		if err == nil {
			err = os.MkdirAll(certs, 0o700)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(certs, to), b, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	sk := newContainersTool(t, s, skopeo, dir, "--insecure-policy")
	g := s.fx.groups[0]
	raw := run(t, sk.command("inspect", "--raw", "--cert-dir", certs, "docker://"+px.host+"/"+repoFor("skopeo")+":"+g.base))
	if _, want := px.get(t, http.MethodGet, "/v2/"+repoFor("skopeo")+"/manifests/"+g.base, string(g.indexType())); !bytes.Equal(raw, want) {
		t.Errorf("skopeo inspect --raw with a client certificate: not the index the proxy serves:\n%s", raw)
	}
}

// TestTLSHandshakeCost measures what TLS adds: a GET /v2/ on a new
// connection, plain HTTP (proxy A) against TLS 1.3 with an ECDSA P-256
// certificate and HTTP/2 (full handshake each time, no resumption), and a
// GET on a kept-alive connection. The figures are logged; the bound only
// catches a handshake gone pathological.
func TestTLSHandshakeCost(t *testing.T) {
	s := shared(t)
	px := s.startTLSProxy(t, "tls-cost", false)
	const n = 200
	measure := func(tr *http.Transport, url string) time.Duration {
		c := &http.Client{Transport: tr}
		ds := make([]time.Duration, n)
		for i := range ds {
			start := time.Now()
			resp, err := c.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			ds[i] = time.Since(start)
		}
		slices.Sort(ds)
		return ds[n/2]
	}
	plain, https := "http://"+s.proxy.host+"/v2/", "https://"+px.host+"/v2/"
	tlsConfig := func() *tls.Config { return &tls.Config{RootCAs: px.ca.Pool()} }
	plainNew := measure(&http.Transport{DisableKeepAlives: true}, plain)
	tlsNew := measure(&http.Transport{DisableKeepAlives: true, TLSClientConfig: tlsConfig(), ForceAttemptHTTP2: true}, https)
	plainKeep := measure(&http.Transport{}, plain)
	tlsKeep := measure(&http.Transport{TLSClientConfig: tlsConfig(), ForceAttemptHTTP2: true}, https)
	t.Logf("GET /v2/, median of %d: new connection plain %s, TLS 1.3 + HTTP/2 %s (+%s for the handshake); kept-alive plain %s, TLS %s",
		n, plainNew, tlsNew, tlsNew-plainNew, plainKeep, tlsKeep)
	if tlsNew > 100*time.Millisecond {
		t.Errorf("a TLS handshake takes %s on loopback", tlsNew)
	}
}
