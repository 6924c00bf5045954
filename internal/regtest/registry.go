package regtest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"github.com/manifold-proxy/manifold/embedded"
	"github.com/manifold-proxy/manifold/upstream"
)

// Registry is a real registry whose ServeHTTP is wrapped: every request is
// logged, and a test can slow requests down or answer them itself (a
// [Fault]) around the real handler, as go-containerregistry's
// error_roundtrip_test does.
type Registry struct {
	// URL is the wrapped registry, http://127.0.0.1:<port>; Host its
	// host:port.
	URL, Host string
	// Backend is the same registry without the wrapper: what a test
	// reaches through it is neither logged nor faulted.
	Backend string

	stop     func()
	mu       sync.Mutex
	requests []string
	fault    Fault
	delay    time.Duration
}

// Fault intercepts a request before the registry sees it; next is the
// real registry. It returns true when it answered the request itself.
type Fault func(w http.ResponseWriter, r *http.Request, next http.Handler) bool

// Option configures NewRegistry.
type Option func(*embedded.Options)

// WithHtpasswd makes the registry require HTTP basic auth by the users of
// an htpasswd file (see Htpasswd).
func WithHtpasswd(path string) Option {
	return func(o *embedded.Options) { o.Htpasswd = path }
}

// NewRegistry starts distribution v3 in process (package embedded, in
// memory) behind the wrapper; it stops when the test ends.
func NewRegistry(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	r := &Registry{}
	var app http.Handler
	o := embedded.Options{Wrap: func(h http.Handler) http.Handler {
		app = h
		return r.wrap(h)
	}}
	for _, f := range opts {
		f(&o)
	}
	reg, err := embedded.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	r.stop = func() { once.Do(func() { _ = reg.Close(context.Background()) }) }
	t.Cleanup(r.stop)
	r.URL, r.Host = reg.URL, strings.TrimPrefix(reg.URL, "http://")
	backend := httptest.NewServer(app)
	t.Cleanup(backend.Close)
	r.Backend = backend.URL
	return r
}

// Serve puts h (go-containerregistry's registry.New(), a reverse proxy to a
// registry shared by a package's tests...) behind the wrapper; it stops
// when the test ends.
func Serve(t testing.TB, h http.Handler) *Registry {
	t.Helper()
	r := &Registry{}
	srv := httptest.NewServer(r.wrap(h))
	t.Cleanup(srv.Close)
	backend := httptest.NewServer(h)
	t.Cleanup(backend.Close)
	r.URL, r.Host, r.Backend = srv.URL, strings.TrimPrefix(srv.URL, "http://"), backend.URL
	r.stop = srv.Close
	return r
}

// Stop stops the wrapped registry: its port refuses connections from then
// on, as an upstream that is down does. Backend keeps serving, so a test
// can still read what the registry holds. A second call does nothing.
func (r *Registry) Stop() { r.stop() }

func (r *Registry) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests = append(r.requests, req.Method+" "+req.URL.Path)
		f, d := r.fault, r.delay
		r.mu.Unlock()
		if d > 0 {
			time.Sleep(d)
		}
		if f != nil && f(w, req, next) {
			return
		}
		next.ServeHTTP(w, req)
	})
}

// SetFault installs f (nil removes it).
func (r *Registry) SetFault(f Fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fault = f
}

// SetDelay adds d of latency to every request (0 removes it).
func (r *Registry) SetDelay(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delay = d
}

// Requests are the requests since the last Reset, in order, as "METHOD
// path".
func (r *Registry) Requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.requests...)
}

// Count counts the requests since the last Reset whose method is one of
// methods.
func (r *Registry) Count(methods ...string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, req := range r.requests {
		m, _, _ := strings.Cut(req, " ")
		for _, want := range methods {
			if m == want {
				n++
			}
		}
	}
	return n
}

// CountPath counts the requests since the last Reset whose path ends in
// suffix ("/tags/list", "/_catalog").
func (r *Registry) CountPath(suffix string) int {
	n := 0
	for _, req := range r.Requests() {
		if strings.HasSuffix(req, suffix) {
			n++
		}
	}
	return n
}

// Writes counts the requests since the last Reset that may change the
// registry: every method but GET and HEAD.
func (r *Registry) Writes() int {
	return len(r.Requests()) - r.Count(http.MethodGet, http.MethodHead)
}

// Reset forgets the requests seen so far.
func (r *Registry) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = nil
}

// Refuse is a Fault that answers the requests match selects with status
// and, when code is set, an OCI error envelope of code and message.
func Refuse(match func(*http.Request) bool, status int, code, message string) Fault {
	return func(w http.ResponseWriter, r *http.Request, _ http.Handler) bool {
		if !match(r) {
			return false
		}
		if code == "" {
			w.WriteHeader(status)
			return true
		}
		type wireError struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		body, _ := json.Marshal(map[string][]wireError{"errors": {{Code: code, Message: message}}})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
		return true
	}
}

// Client is an upstream client for the registry, through the wrapper.
func (r *Registry) Client(t testing.TB) *upstream.Client {
	t.Helper()
	c, err := upstream.New(upstream.Options{URL: r.URL})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Ref parses s ("host/repo:tag" or "host/repo@digest") for a registry
// spoken to over plain HTTP.
func Ref(t testing.TB, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// Push writes img (a v1.Image or v1.ImageIndex) under repo:tag, through the
// wrapper, and returns its digest.
func (r *Registry) Push(t testing.TB, repo, tag string, img any) v1.Hash {
	t.Helper()
	ref := Ref(t, r.Host+"/"+repo+":"+tag)
	var d v1.Hash
	var err error
	switch x := img.(type) {
	case v1.Image:
		err = remote.Write(ref, x)
		if err == nil {
			d, err = x.Digest()
		}
	case v1.ImageIndex:
		err = remote.WriteIndex(ref, x)
		if err == nil {
			d, err = x.Digest()
		}
	default:
		t.Fatalf("push %T", img)
	}
	if err != nil {
		t.Fatalf("push %s:%s: %v", repo, tag, err)
	}
	return d
}

// Head is the digest under repo:ref ("" when absent).
func (r *Registry) Head(t testing.TB, repo, ref string) string {
	t.Helper()
	d, err := r.Client(t).Head(context.Background(), repo, ref)
	if upstream.IsNotFound(err) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return d.Digest.String()
}

// Tags lists repo's tags.
func (r *Registry) Tags(t testing.TB, repo string) []string {
	t.Helper()
	tags, err := r.Client(t).Tags(context.Background(), repo)
	if err != nil {
		t.Fatal(err)
	}
	return tags
}

// Snapshot maps every tag of repo to its digest.
func (r *Registry) Snapshot(t testing.TB, repo string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, tag := range r.Tags(t, repo) {
		out[tag] = r.Head(t, repo, tag)
	}
	return out
}

// Htpasswd writes an htpasswd file (bcrypt) with users' passwords and
// returns its path.
func Htpasswd(t testing.TB, users map[string]string) string {
	t.Helper()
	var lines []string
	for u, pw := range users {
		hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, u+":"+string(hash))
	}
	path := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
