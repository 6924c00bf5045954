package proxy_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"github.com/distribution/distribution/v3/registry/auth"
	dauth "github.com/distribution/distribution/v3/registry/auth"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/auth/token"

	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/proxy"
	"github.com/manifold-proxy/manifold/upstream"
)

// TestUpstreamCredentials: an upstream that requires a login is read and
// written with the proxy's static credentials; clients of the proxy need
// none, and a proxy with wrong credentials says so.
func TestUpstreamCredentials(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t, regtest.WithHtpasswd(regtest.Htpasswd(t, map[string]string{"ci": "s3cret"})))
	host := reg.Host
	ci := authn.FromConfig(authn.AuthConfig{Username: "ci", Password: "s3cret"})

	img := regtest.PlatformImage(t, "linux/arm64", false)
	r, _ := name.NewTag(host+"/private/app:1-linux-arm64", name.Insecure)
	if err := remote.Write(r, img); err != nil == false {
		t.Fatal("the upstream must refuse anonymous pushes")
	}
	if err := remote.Write(r, img, remote.WithAuth(ci)); err != nil {
		t.Fatal(err)
	}

	serve := func(auth authn.Authenticator) string {
		c, err := upstream.New(upstream.Options{URL: reg.URL, Auth: auth})
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimPrefix(regtest.StartProxy(t, proxy.Options{Upstreams: []proxy.Upstream{{Client: c}}}).URL, "http://")
	}
	good := serve(ci)
	got, err := remote.Image(regtest.Ref(t, good+"/private/app:1"), remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "arm64"}))
	if err != nil {
		t.Fatalf("pull through a proxy with credentials: %v", err)
	}
	if mustDigest(t, got) != mustDigest(t, img) {
		t.Error("wrong image")
	}
	// Pushes through the proxy use its credentials too.
	if err := remote.Write(regtest.Ref(t, good+"/private/app:1-linux-amd64"), regtest.PlatformImage(t, "linux/amd64", false)); err != nil {
		t.Errorf("push through a proxy with credentials: %v", err)
	}

	bad := serve(authn.FromConfig(authn.AuthConfig{Username: "ci", Password: "wrong"}))
	resp, body := regtest.Get(t, http.MethodGet, "http://"+bad+"/v2/private/app/manifests/1")
	if resp.StatusCode != http.StatusForbidden || ociError(t, body) != "UNAUTHORIZED" || !strings.Contains(string(body), "upstream refused the proxy's credentials") {
		t.Errorf("wrong upstream credentials: %d %s", resp.StatusCode, body)
	}
}

// TestClientAuth: an htpasswd-protected proxy challenges, lets users in,
// applies per-repository read/write rules and filters the catalog.
func TestClientAuth(t *testing.T) {
	t.Parallel()
	htpasswd := regtest.Htpasswd(t, map[string]string{"alice": "a-pw", "bob": "b-pw"})
	ctl, err := dauth.GetAccessController("htpasswd", map[string]any{"realm": "manifold", "path": htpasswd})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *proxy.Options) {
		o.Access = &proxy.Access{Controller: ctl, Rules: []proxy.AccessRule{
			{Pattern: "team/*", Read: []string{"*"}, Write: []string{"alice"}},
			{Pattern: "secret/*", Read: []string{"alice"}, Write: []string{"alice"}},
		}}
	})
	e.push("team/app:1-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false))
	e.push("secret/app:1-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false))
	alice := authn.FromConfig(authn.AuthConfig{Username: "alice", Password: "a-pw"})
	bob := authn.FromConfig(authn.AuthConfig{Username: "bob", Password: "b-pw"})

	resp, body := regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/")
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Basic realm="manifold"` || ociError(t, body) != "UNAUTHORIZED" {
		t.Errorf("anonymous /v2/: %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}
	if _, err := remote.Index(regtest.Ref(t, e.host+"/team/app:1")); err == nil {
		t.Error("anonymous pull allowed")
	}
	if _, err := remote.Index(regtest.Ref(t, e.host+"/team/app:1"), remote.WithAuth(bob)); err != nil {
		t.Errorf("bob pulls team/app: %v", err)
	}
	if _, err := remote.Index(regtest.Ref(t, e.host+"/secret/app:1"), remote.WithAuth(bob)); err == nil || !strings.Contains(err.Error(), "DENIED") {
		t.Errorf("bob pulls secret/app: %v", err)
	}
	if err := remote.Write(regtest.Ref(t, e.host+"/team/app:1-linux-arm64"), regtest.PlatformImage(t, "linux/arm64", false), remote.WithAuth(bob)); err == nil {
		t.Error("bob pushed to team/app")
	}
	if err := remote.Write(regtest.Ref(t, e.host+"/team/app:1-linux-arm64"), regtest.PlatformImage(t, "linux/arm64", false), remote.WithAuth(alice)); err != nil {
		t.Errorf("alice pushes to team/app: %v", err)
	}
	wrong := authn.FromConfig(authn.AuthConfig{Username: "alice", Password: "nope"})
	if _, err := remote.Index(regtest.Ref(t, e.host+"/team/app:1"), remote.WithAuth(wrong)); err == nil {
		t.Error("wrong password accepted")
	}
	reg, _ := name.NewRegistry(e.host, name.Insecure)
	for user, want := range map[authn.Authenticator]string{bob: "team/app", alice: "secret/app team/app"} {
		repos, err := remote.Catalog(context.Background(), reg, remote.WithAuth(user))
		if err != nil || strings.Join(repos, " ") != want {
			t.Errorf("catalog: %v %v, want %s", repos, err, want)
		}
	}
}

func TestAnonymousRead(t *testing.T) {
	t.Parallel()
	ctl, err := dauth.GetAccessController("htpasswd", map[string]any{"realm": "manifold", "path": regtest.Htpasswd(t, map[string]string{"ci": "pw"})})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *proxy.Options) { o.Access = &proxy.Access{Controller: ctl, AnonymousRead: true} })
	e.push("app:1-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false))
	if _, err := remote.Index(regtest.Ref(t, e.host+"/app:1")); err != nil {
		t.Errorf("anonymous read: %v", err)
	}
	if err := remote.Write(regtest.Ref(t, e.host+"/app:2-linux-amd64"), regtest.PlatformImage(t, "linux/amd64", false)); err == nil {
		t.Error("anonymous push allowed")
	}
	ci := authn.FromConfig(authn.AuthConfig{Username: "ci", Password: "pw"})
	if err := remote.Write(regtest.Ref(t, e.host+"/app:2-linux-amd64"), regtest.PlatformImage(t, "linux/amd64", false), remote.WithAuth(ci)); err != nil {
		t.Errorf("ci push: %v", err)
	}
}

// tokenServer is a Docker token service: it signs, with a key whose
// self-signed certificate is the trust root, a JWT granting what the
// client asks for, to the users it knows.
func tokenServer(t *testing.T, users map[string]string, grant func(user, scope string) []string) (h http.Handler, bundle string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "manifold test token issuer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true, IsCA: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	bundle = filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("x5c", []string{base64.StdEncoding.EncodeToString(der)}))
	if err != nil {
		t.Fatal(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pw, ok := r.BasicAuth()
		if !ok || users[user] != pw {
			http.Error(w, "bad credentials", http.StatusUnauthorized)
			return
		}
		var access []map[string]any
		for _, scope := range r.URL.Query()["scope"] {
			parts := strings.Split(scope, ":")
			if len(parts) != 3 {
				continue
			}
			if actions := grant(user, scope); len(actions) > 0 {
				access = append(access, map[string]any{"type": parts[0], "name": parts[1], "actions": actions})
			}
		}
		now := time.Now().Unix()
		claims, _ := json.Marshal(map[string]any{"iss": "test-issuer", "sub": user, "aud": r.URL.Query().Get("service"),
			"exp": now + 300, "nbf": now - 10, "iat": now, "jti": fmt.Sprint(now), "access": access})
		obj, err := signer.Sign(claims)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		tok, _ := obj.CompactSerialize()
		_ = json.NewEncoder(w).Encode(map[string]string{"token": tok})
	}), bundle
}

// TestClientTokenAuth: the proxy accepts tokens of a Docker token service
// and enforces the access they grant.
func TestClientTokenAuth(t *testing.T) {
	t.Parallel()
	tokens, bundle := tokenServer(t, map[string]string{"alice": "a", "bob": "b"}, func(user, scope string) []string {
		if user == "alice" {
			return []string{"pull", "push"}
		}
		return []string{"pull"}
	})
	// Clients only follow a loopback token realm on the registry's own
	// host:port, so the token service shares the proxy's listener here.
	var p http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			tokens.ServeHTTP(w, r)
			return
		}
		p.ServeHTTP(w, r)
	}))
	defer srv.Close()
	ctl, err := dauth.GetAccessController("token", map[string]any{
		"realm": srv.URL + "/token", "service": "manifold", "issuer": "test-issuer", "rootcertbundle": bundle,
	})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	p = e.newProxyHandler(func(o *proxy.Options) { o.Access = &proxy.Access{Controller: ctl} })
	e.proxy, e.host = srv, strings.TrimPrefix(srv.URL, "http://")
	e.push("app:1-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false))
	resp, _ := regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/app/manifests/1")
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer realm=") {
		t.Fatalf("anonymous: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	alice := authn.FromConfig(authn.AuthConfig{Username: "alice", Password: "a"})
	bob := authn.FromConfig(authn.AuthConfig{Username: "bob", Password: "b"})
	if _, err := remote.Index(regtest.Ref(t, e.host+"/app:1"), remote.WithAuth(bob)); err != nil {
		t.Errorf("bob pulls with a token: %v", err)
	}
	if err := remote.Write(regtest.Ref(t, e.host+"/app:1-linux-arm64"), regtest.PlatformImage(t, "linux/arm64", false), remote.WithAuth(bob)); err == nil {
		t.Error("bob's pull-only token pushed")
	}
	if err := remote.Write(regtest.Ref(t, e.host+"/app:1-linux-arm64"), regtest.PlatformImage(t, "linux/arm64", false), remote.WithAuth(alice)); err != nil {
		t.Errorf("alice pushes with a token: %v", err)
	}
	// Deleting needs "delete" in the token, which push does not imply.
	del, _ := name.NewTag(e.host+"/app:1-linux-arm64", name.Insecure)
	if err := remote.Delete(del, remote.WithAuth(alice)); err == nil {
		t.Error("a token without delete deleted a tag")
	}
}

// TestRulesCannotBeBypassed: neither a cross-repository mount nor an
// anonymous request reads what the rules refuse.
func TestRulesCannotBeBypassed(t *testing.T) {
	t.Parallel()
	ctl, err := dauth.GetAccessController("htpasswd", map[string]any{"realm": "manifold", "path": regtest.Htpasswd(t, map[string]string{"alice": "a", "bob": "b"})})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *proxy.Options) {
		o.Access = &proxy.Access{Controller: ctl, AnonymousRead: true, Rules: []proxy.AccessRule{
			{Pattern: "secret/*", Read: []string{"alice"}, Write: []string{"alice"}},
			{Pattern: "open/*", Read: []string{proxy.Anonymous, "*"}, Write: []string{"*"}},
		}}
	})
	img := regtest.PlatformImage(t, "linux/amd64", false)
	e.push("secret/app:1-linux-amd64", img)
	e.push("open/app:1-linux-amd64", regtest.PlatformImage(t, "linux/amd64", false))
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()

	bob := func(method, path string) *http.Response {
		req, _ := http.NewRequest(method, e.proxy.URL+path, nil)
		req.SetBasicAuth("bob", "b")
		resp, _ := regtest.Do(t, req)
		return resp
	}
	if resp := bob(http.MethodGet, "/v2/secret/app/blobs/"+ld.String()); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("bob reads secret/app: %d", resp.StatusCode)
	}
	resp := bob(http.MethodPost, "/v2/bob/x/blobs/uploads/?mount="+ld.String()+"&from=secret/app")
	if resp.StatusCode == http.StatusCreated {
		t.Error("bob mounted a blob of secret/app")
	}
	if resp := bob(http.MethodGet, "/v2/bob/x/blobs/"+ld.String()); resp.StatusCode == http.StatusOK {
		t.Error("bob reads secret/app's blob through a mount")
	}
	// Anonymous: open/* lists anonymous, secret/* does not.
	if resp, _ := regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/open/app/manifests/1"); resp.StatusCode != http.StatusOK {
		t.Errorf("anonymous read of open/app: %d", resp.StatusCode)
	}
	if resp, _ := regtest.Get(t, http.MethodGet, e.proxy.URL+"/v2/secret/app/manifests/1"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous read of secret/app: %d, want 401", resp.StatusCode)
	}
	// Alice may mount from secret/app.
	req, _ := http.NewRequest(http.MethodPost, e.proxy.URL+"/v2/secret/copy/blobs/uploads/?mount="+ld.String()+"&from=secret/app", nil)
	req.SetBasicAuth("alice", "a")
	if resp, _ := regtest.Do(t, req); resp.StatusCode != http.StatusCreated {
		t.Errorf("alice mount: %d", resp.StatusCode)
	}
}

// TestL2_RulesOnTheCanonicalName: on a Docker Hub upstream, hub/nginx
// bypassed a hub/library/* rule: rules matched the client's spelling, not
// the repository. Rules (and policies) now match the canonical name.
func TestL2_RulesOnTheCanonicalName(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	library := true
	hub, _ := upstream.New(upstream.Options{URL: reg.URL, Library: &library})
	htpasswd := regtest.Htpasswd(t, map[string]string{"alice": "a-secret", "bob": "b-secret"})
	ctl, err := auth.GetAccessController("htpasswd", map[string]any{"realm": "test", "path": htpasswd})
	if err != nil {
		t.Fatal(err)
	}
	srv := regtest.StartProxy(t, proxy.Options{
		Upstreams: []proxy.Upstream{{Prefix: "hub", Client: hub}},
		Access:    &proxy.Access{Controller: ctl, Rules: []proxy.AccessRule{{Pattern: "hub/library/*", Read: []string{"alice"}, Write: []string{"alice"}}}},
	})
	for _, name := range []string{"hub/nginx", "hub/library/nginx"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/"+name+"/tags/list", nil)
		req.SetBasicAuth("bob", "b-secret")
		if resp, _ := regtest.Do(t, req); resp.StatusCode != http.StatusForbidden {
			t.Errorf("bob reading %s: %d, want 403 (the hub/library/* rule)", name, resp.StatusCode)
		}
	}
}

// TestL1_NoUserEnumerationByTiming: an unknown user was refused in 4 ms, a
// known user with a wrong password in 83 ms, so timing told which users
// exist. Both now cost a bcrypt comparison of the file's cost.
func TestL1_NoUserEnumerationByTiming(t *testing.T) {
	t.Parallel()
	hash, err := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(path, []byte("alice:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctl, err := auth.GetAccessController("htpasswd", map[string]any{"realm": "test", "path": path})
	if err != nil {
		t.Fatal(err)
	}
	even, err := proxy.EvenHtpasswd(ctl, path)
	if err != nil {
		t.Fatal(err)
	}
	median := func(user string) time.Duration {
		var ds []time.Duration
		for range 7 {
			r := httptest.NewRequest(http.MethodGet, "/v2/", nil)
			r.SetBasicAuth(user, "wrong")
			start := time.Now()
			if _, err := even.Authorized(r); err == nil {
				t.Fatal("a wrong password was accepted")
			}
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	known, unknown := median("alice"), median("mallory")
	if unknown < known/2 {
		t.Errorf("unknown user refused in %s, known user in %s: timing tells them apart", unknown, known)
	}
	r := httptest.NewRequest(http.MethodGet, "/v2/", nil)
	r.SetBasicAuth("alice", "right")
	if g, err := even.Authorized(r); err != nil || g.User.Name != "alice" {
		t.Errorf("the right password: %v %v", g, err)
	}
}
