package e2e_test

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/manifold-proxy/manifold/internal/regtest"
)

// mirrorRegistry is the registry the TLS proxy's upstream mirrors besides
// docker.io: image references name it, no DNS ever resolves it (every
// runtime is told to reach it through the proxy, and its origin is a
// closed loopback port).
const mirrorRegistry = "registry.example.test"

// tlsProxy is a `proxy serve` child process serving HTTPS with a
// certificate for 127.0.0.1 and localhost, issued by a CA made in the test;
// its upstream is the suite's, mirroring docker.io and mirrorRegistry.
type tlsProxy struct {
	*proxyProc
	ca  *regtest.CA
	dir string // holds ca.crt, tls.crt, tls.key, client.crt, client.key
	// caFile is the CA certificate, what clients are told to trust;
	// certDir is a containers/image certificate directory holding it as
	// ca.crt (skopeo --cert-dir, podman --cert-dir).
	caFile, certDir string
	// client trusts only the CA and presents the CA's client certificate.
	client *http.Client
}

// startTLSProxy starts a TLS proxy for one test; mutual requires client
// certificates of its CA (tls.clientCAs).
func (s *suite) startTLSProxy(t *testing.T, name string, mutual bool) *tlsProxy {
	t.Helper()
	px := &tlsProxy{ca: regtest.NewCA(t), dir: s.tempDir(t, name+"-tls")}
	px.caFile = px.ca.WriteCert(t, filepath.Join(px.dir, "ca.crt"))
	px.certDir = filepath.Join(px.dir, "certs")
	if err := os.Mkdir(px.certDir, 0o700); err != nil {
		t.Fatal(err)
	}
	px.ca.WriteCert(t, filepath.Join(px.certDir, "ca.crt"))
	cert, key, _ := px.ca.Issue(t, px.dir, "tls", "127.0.0.1", "localhost")
	clientCert, clientKey, _ := px.ca.Issue(t, px.dir, "client", "e2e-client")
	pair, err := tls.LoadX509KeyPair(clientCert, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	px.client = &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: px.ca.Pool(), Certificates: []tls.Certificate{pair}},
		ForceAttemptHTTP2: true,
	}}
	tlsConfig := fmt.Sprintf("{certificate: %q, key: %q}", cert, key)
	if mutual {
		tlsConfig = fmt.Sprintf("{certificate: %q, key: %q, clientCAs: %q}", cert, key, px.caFile)
	}
	p, err := s.startProxyWith(name, func(wd, host string) ([]string, error) {
		cfg := fmt.Sprintf("listen: %q\ntls: %s\nupstreams:\n  - url: %q\n    mirrorOf: [docker.io, %s]\nlog: {level: info}\n",
			host, tlsConfig, s.upstream.URL, mirrorRegistry)
		path := filepath.Join(wd, "config.yaml")
		return []string{"serve", "--config", path}, os.WriteFile(path, []byte(cfg), 0o600)
	}, func(host string) bool {
		resp, err := px.client.Get("https://" + host + "/v2/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if err != nil {
		t.Fatal(err)
	}
	stopInCleanup(t, p.proc)
	px.proxyProc = p
	return px
}

// get sends method to the proxy's path with the given Accept lines, over
// TLS, and returns the response and its body.
func (px *tlsProxy) get(t *testing.T, method, path string, accept ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "https://"+px.host+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range accept {
		req.Header.Add("Accept", a)
	}
	return regtest.DoWith(t, px.client, req)
}

// indexDigest HEADs repo:tag (with query, such as ?ns=...) the way
// containerd resolves a tag and returns the digest.
func (px *tlsProxy) indexDigest(t *testing.T, repo, tag, query string) string {
	t.Helper()
	resp, _ := px.get(t, http.MethodHead, "/v2/"+repo+"/manifests/"+tag+query, containerdAccept)
	d := resp.Header.Get("Docker-Content-Digest")
	if resp.StatusCode != http.StatusOK || d == "" {
		t.Fatalf("HEAD %s:%s%s over TLS: %d, digest %q", repo, tag, query, resp.StatusCode, d)
	}
	return d
}

// logged returns the request log lines after mark whose path starts with
// prefix.
func (px *tlsProxy) logged(mark int, prefix string) []logLine {
	var out []logLine
	reqs := px.requests()
	for _, r := range reqs[min(mark, len(reqs)):] {
		if strings.HasPrefix(r.Path, prefix) {
			out = append(out, r)
		}
	}
	return out
}
