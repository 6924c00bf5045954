package upstream

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/manifold-proxy/manifold/internal/flight"
)

// Defaults of Options.
const (
	// DefaultUserAgent is sent upstream.
	DefaultUserAgent = "manifold"
	// DefaultTransportMaxAge is how long an authenticated transport is
	// reused.
	DefaultTransportMaxAge = 10 * time.Minute
)

// Options configure a Client.
type Options struct {
	// URL of the registry: http://host:port (plain HTTP) or https://host.
	URL string
	// InsecureSkipVerify disables TLS certificate checks. Default false.
	InsecureSkipVerify bool
	// Auth is the credential for the upstream. Default anonymous. Mutually
	// exclusive with Keychain.
	Auth authn.Authenticator
	// Keychain resolves credentials per registry (docker config, credential
	// helpers: authn.DefaultKeychain).
	Keychain authn.Keychain
	// Transport is the base transport. Default: a clone of
	// http.DefaultTransport with bounded dial and header timeouts, guarded
	// by the redirect policy (see guard.go). A Transport given here is used
	// as is.
	Transport http.RoundTripper
	// Retry policy for GET and HEAD.
	Retry Retry
	// UserAgent sent upstream. Default DefaultUserAgent.
	UserAgent string
	// Header is added to every request (e.g. HeaderSynthesis). Default none.
	Header http.Header
	// MaxInFlight bounds the requests open on the upstream at once (a
	// streamed blob holds one until it is read); more wait for a slot.
	// Default DefaultMaxInFlight.
	MaxInFlight int
	// TransportMaxAge is how long an authenticated transport (its token and
	// resolved credentials) is reused. Default DefaultTransportMaxAge.
	TransportMaxAge time.Duration
	// Library applies Docker Hub's naming rule: a one-component repository
	// name is library/<name> there (nginx is library/nginx). Default: on
	// for Docker Hub's hosts (docker.io, index.docker.io,
	// registry-1.docker.io), off elsewhere; set it for a registry that
	// mirrors Docker Hub.
	Library *bool
}

// PasswordFile is a username whose password is read from path each time
// credentials are needed, so a rotated secret is picked up.
func PasswordFile(username, path string) authn.Authenticator {
	return &passwordFile{user: username, path: path}
}

type passwordFile struct{ user, path string }

func (p *passwordFile) Authorization() (*authn.AuthConfig, error) {
	b, err := os.ReadFile(p.path)
	if err != nil {
		return nil, fmt.Errorf("reading password: %w", err)
	}
	return &authn.AuthConfig{Username: p.user, Password: strings.TrimRight(string(b), "\r\n")}, nil
}

// HeaderSynthesis, set to "off" on a request to a manifold proxy, turns
// synthesis off for that request: the proxy answers exactly as its
// upstream does (no synthesized bare tags in manifests or tag lists).
// inspect and migrate send it, so they see the registry's real content
// whether they talk to it directly or through a proxy.
const HeaderSynthesis = "Manifold-Synthesis"

// Client talks to one upstream registry.
type Client struct {
	guard      *guard // nil with a caller's Options.Transport
	limit      *limitTransport
	reg        name.Registry
	scheme     string
	auth       authn.Authenticator
	keychain   authn.Keychain
	base       http.RoundTripper
	transports *lru.Cache[string, cachedTransport]
	maxAge     time.Duration
	sf         flight.Group[http.RoundTripper]
	library    bool
}

// DefaultTransport is the base transport used when Options.Transport is nil.
func DefaultTransport(insecureSkipVerify bool) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	// A backstop for requests with a body (uploads), whose headers come
	// once the body is sent; GET and HEAD are bound by Retry.Timeout.
	t.ResponseHeaderTimeout = DefaultTimeout
	t.MaxIdleConnsPerHost = 64
	// Registries send compressed layers; never ask for transport gzip, so
	// Content-Length and digests stay those of the stored bytes.
	t.DisableCompression = true
	if insecureSkipVerify {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for by configuration
	}
	return t
}

// New makes a Client. It does not contact the registry.
func New(o Options) (*Client, error) {
	u, err := url.Parse(o.URL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("upstream url %q: want http://host[:port] or https://host[:port]", o.URL)
	}
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("upstream url %q: a registry URL has no path", o.URL)
	}
	var nopts []name.Option
	if u.Scheme == "http" {
		nopts = append(nopts, name.Insecure)
	}
	reg, err := name.NewRegistry(u.Host, nopts...)
	if err != nil {
		return nil, fmt.Errorf("upstream url %q: %w", o.URL, err)
	}
	if o.Auth != nil && o.Keychain != nil {
		return nil, errors.New("upstream: set Auth or Keychain, not both")
	}
	base := o.Transport
	var g *guard
	if base == nil {
		t := DefaultTransport(o.InsecureSkipVerify)
		g = &guard{host: u.Host, scheme: u.Scheme, proxy: envProxy(u)}
		t.DialContext = g.dialer(&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second})
		base = &guardTransport{inner: t, g: g}
	}
	ua := o.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	limit := &limitTransport{inner: base, slots: make(chan struct{}, o.MaxInFlight)}
	base = &retryTransport{inner: limit, r: o.Retry.withDefaults()}
	if len(o.Header) > 0 {
		base = &headerTransport{inner: base, h: o.Header}
	}
	base = transport.NewUserAgent(base, ua)
	cache, _ := lru.New[string, cachedTransport](1024)
	if o.TransportMaxAge <= 0 {
		o.TransportMaxAge = DefaultTransportMaxAge
	}
	c := &Client{guard: g, limit: limit, reg: reg, scheme: u.Scheme, auth: o.Auth, keychain: o.Keychain, base: base, transports: cache, maxAge: o.TransportMaxAge}
	if c.auth == nil && c.keychain == nil {
		c.auth = authn.Anonymous
	}
	c.library = CanonicalRegistry(c.reg.RegistryStr()) == DockerHub
	if o.Library != nil {
		c.library = *o.Library
	}
	return c, nil
}

// InFlight is the number of requests open on the upstream.
func (c *Client) InFlight() int { return c.limit.InFlight() }

// Registry is the upstream registry's name.
func (c *Client) Registry() name.Registry { return c.reg }

// Repository names repo on the upstream.
func (c *Client) Repository(repo string) (name.Repository, error) {
	return c.reg.Repo(repo), nameCheck(repo)
}

func nameCheck(repo string) error {
	_, err := name.NewRepository("example.com/"+repo, name.StrictValidation)
	return err
}

// URL is the upstream URL for path (and raw query).
func (c *Client) URL(path, rawQuery string) *url.URL {
	return &url.URL{Scheme: c.scheme, Host: c.reg.RegistryStr(), Path: path, RawQuery: rawQuery}
}

// Host is host[:port] of the upstream.
func (c *Client) Host() string { return c.reg.RegistryStr() }

// Scope builds a token scope for repo with actions ("pull", "push", ...).
func Scope(repo string, actions ...string) string {
	return "repository:" + repo + ":" + strings.Join(actions, ",")
}

// Transport returns an authenticated transport for scopes (see Scope). The
// first call per scope set pings the registry and fetches a token; later
// calls are served from a cache for TransportMaxAge, after which the
// credentials are resolved again (credential helpers hand out expiring
// credentials; a password file may have been rotated).
func (c *Client) Transport(ctx context.Context, scopes ...string) (http.RoundTripper, error) {
	return c.FreshTransport(ctx, c.maxAge, scopes...)
}

// FreshTransport is Transport with a token at most maxAge old. A request
// whose body cannot be sent twice needs one: go-containerregistry renews an
// expired token on the 401 and resends the same request, whose body is
// gone by then.
func (c *Client) FreshTransport(ctx context.Context, maxAge time.Duration, scopes ...string) (http.RoundTripper, error) {
	scopes = append([]string(nil), scopes...)
	sort.Strings(scopes)
	key := strings.Join(scopes, " ")
	fresh := func() (http.RoundTripper, bool) {
		if e, ok := c.transports.Get(key); ok && time.Since(e.created) < maxAge {
			return e.rt, true
		}
		return nil, false
	}
	if t, ok := fresh(); ok {
		return t, nil
	}
	// One token exchange per scope at a time (internal/flight), detached
	// from the first caller — its hanging up must not fail the others — and
	// cancelled when every caller has gone.
	return c.sf.Do(ctx, key+"\x00"+maxAge.String(), func(ctx context.Context) (http.RoundTripper, error) {
		if t, ok := fresh(); ok {
			return t, nil
		}
		auth := c.auth
		if c.keychain != nil {
			a, err := c.keychain.Resolve(c.reg)
			if err != nil {
				return nil, fmt.Errorf("resolving credentials for %s: %w", c.reg, err)
			}
			auth = a
		}
		tctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
		t, err := transport.NewWithContext(tctx, c.reg, auth, c.base, scopes)
		if err != nil {
			return nil, err
		}
		c.transports.Add(key, cachedTransport{rt: t, created: time.Now()})
		return t, nil
	})
}

type cachedTransport struct {
	rt      http.RoundTripper
	created time.Time
}

func (c *Client) puller(ctx context.Context, repo string) (*remote.Puller, error) {
	t, err := c.Transport(ctx, Scope(repo, "pull"))
	if err != nil {
		return nil, err
	}
	return remote.NewPuller(remote.WithTransport(t), remote.WithContext(ctx))
}

func (c *Client) ref(repo, ref string) (name.Reference, error) {
	if strings.Contains(ref, ":") {
		return name.NewDigest(c.reg.Name()+"/"+repo+"@"+ref, name.Insecure)
	}
	return name.NewTag(c.reg.Name()+"/"+repo+":"+ref, name.Insecure)
}

// Head resolves ref (a tag or digest) in repo to a descriptor, asking for
// every manifest type.
func (c *Client) Head(ctx context.Context, repo, ref string) (v1.Descriptor, error) {
	r, err := c.ref(repo, ref)
	if err != nil {
		return v1.Descriptor{}, err
	}
	p, err := c.puller(ctx, repo)
	if err != nil {
		return v1.Descriptor{}, err
	}
	d, err := p.Head(ctx, r)
	if err != nil {
		return v1.Descriptor{}, err
	}
	return *d, nil
}

// Manifest fetches the manifest dgst of repo, verified against its digest.
// Manifests over limit bytes are refused.
func (c *Client) Manifest(ctx context.Context, repo string, dgst v1.Hash, limit int64) ([]byte, types.MediaType, error) {
	r, err := c.ref(repo, dgst.String())
	if err != nil {
		return nil, "", err
	}
	p, err := c.puller(ctx, repo)
	if err != nil {
		return nil, "", err
	}
	d, err := p.Get(ctx, r)
	if err != nil {
		return nil, "", err
	}
	if int64(len(d.Manifest)) > limit {
		return nil, "", fmt.Errorf("manifest %s is %d bytes, %w of %d bytes", dgst, len(d.Manifest), ErrTooLarge, limit)
	}
	return d.Manifest, d.MediaType, nil
}

// manifestAccept is every manifest type, as a HEAD or GET of a tag asks.
var manifestAccept = strings.Join([]string{
	string(types.OCIImageIndex), string(types.OCIManifestSchema1),
	string(types.DockerManifestList), string(types.DockerManifestSchema2),
	string(types.DockerManifestSchema1), string(types.DockerManifestSchema1Signed),
}, ", ")

// GetTag reads the manifest tag of repo with one GET (asking for every
// manifest type): its descriptor and bytes. At most limit bytes are read
// (ErrTooLarge beyond, without reading the rest), and when the registry
// reports a digest the bytes must have it.
func (c *Client) GetTag(ctx context.Context, repo, tag string, limit int64) (v1.Descriptor, []byte, error) {
	rt, err := c.Transport(ctx, Scope(repo, "pull"))
	if err != nil {
		return v1.Descriptor{}, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL("/v2/"+repo+"/manifests/"+tag, "").String(), nil)
	if err != nil {
		return v1.Descriptor{}, nil, err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return v1.Descriptor{}, nil, err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return v1.Descriptor{}, nil, err
	}
	if resp.ContentLength > limit {
		return v1.Descriptor{}, nil, fmt.Errorf("manifest %s:%s is %d bytes, %w of %d bytes", repo, tag, resp.ContentLength, ErrTooLarge, limit)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return v1.Descriptor{}, nil, err
	}
	if int64(len(b)) > limit {
		return v1.Descriptor{}, nil, fmt.Errorf("manifest %s:%s is %w of %d bytes", repo, tag, ErrTooLarge, limit)
	}
	dgst, _, _ := v1.SHA256(bytes.NewReader(b))
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" && h != dgst.String() {
		return v1.Descriptor{}, nil, fmt.Errorf("manifest %s:%s: the registry says %s, the bytes are %s", repo, tag, h, dgst)
	}
	mt := types.MediaType(resp.Header.Get("Content-Type"))
	return v1.Descriptor{MediaType: mt, Digest: dgst, Size: int64(len(b))}, b, nil
}

// LastHead is not kept by a Client (resolve.Cache keeps it).
func (c *Client) LastHead(string, string) (v1.Descriptor, bool) { return v1.Descriptor{}, false }

// Blob reads the small blob dgst of repo (an image config), verified
// against its digest; blobs over limit bytes are refused.
func (c *Client) Blob(ctx context.Context, repo string, dgst v1.Hash, limit int64) ([]byte, error) {
	r, err := name.NewDigest(c.reg.Name()+"/"+repo+"@"+dgst.String(), name.Insecure)
	if err != nil {
		return nil, err
	}
	p, err := c.puller(ctx, repo)
	if err != nil {
		return nil, err
	}
	l, err := p.Layer(ctx, r)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("blob %s is %w of %d bytes", dgst, ErrTooLarge, limit)
	}
	return b, nil
}

// RepoPath is repo as the upstream names it: with the Library rule
// (Docker Hub), official images live under library/.
func (c *Client) RepoPath(repo string) string {
	if c.library {
		return LibraryPath(repo)
	}
	return repo
}

// LibraryPath is repo as Docker Hub names it: a one-component name is an
// official image, under library/ (nginx is library/nginx).
func LibraryPath(repo string) string {
	if !strings.Contains(repo, "/") {
		return "library/" + repo
	}
	return repo
}

// DockerHub is Docker Hub's registry name as image references write it
// (docker.io/library/nginx), and as containerd's ns parameter names it.
const DockerHub = "docker.io"

// CanonicalRegistry is a registry's one name: lower case, and Docker
// Hub's hosts (index.docker.io, registry-1.docker.io) as docker.io. Two
// names of one registry give the same string.
func CanonicalRegistry(host string) string {
	host = strings.ToLower(host)
	switch host {
	case "index.docker.io", "registry-1.docker.io":
		return DockerHub
	}
	return host
}

// ParseRegistry checks that s is a registry's name as image references
// write it — host[:port], no scheme, no path — and returns its canonical
// form (CanonicalRegistry).
func ParseRegistry(s string) (string, error) {
	bad := fmt.Errorf("%q: want a registry name, host[:port], such as docker.io or registry.example.com:5000", s)
	u, err := url.Parse("//" + s)
	if err != nil || u.Host != s || u.User != nil || s == "" {
		return "", bad
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", bad
		}
	}
	if h := u.Hostname(); net.ParseIP(h) == nil && !hostname(h) {
		return "", bad
	}
	return CanonicalRegistry(s), nil
}

// hostname reports whether h is a DNS name: dot-separated labels of
// letters, digits and inner hyphens.
func hostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// Ping checks that the upstream answers the /v2/ endpoint (any HTTP
// answer, 401 included, means it is up).
func (c *Client) Ping(ctx context.Context) error {
	_, err := transport.Ping(ctx, c.reg, c.base)
	return err
}

// WithHeader returns a transport that adds h to every request sent
// through rt (e.g. HeaderSynthesis: off for go-containerregistry clients).
func WithHeader(rt http.RoundTripper, h http.Header) http.RoundTripper {
	return &headerTransport{inner: rt, h: h}
}

// headerTransport adds fixed headers to every request.
type headerTransport struct {
	inner http.RoundTripper
	h     http.Header
}

func (t *headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	for k, v := range t.h {
		req.Header[http.CanonicalHeaderKey(k)] = v
	}
	return t.inner.RoundTrip(req)
}
