package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	pathpkg "path"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/manifold-proxy/manifold/content"
	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/platform"
	"github.com/manifold-proxy/manifold/resolve"
	"github.com/manifold-proxy/manifold/store"
	"github.com/manifold-proxy/manifold/upstream"
)

// Upstream is one upstream registry and the repository prefix that
// selects it.
type Upstream struct {
	// Prefix selects this upstream: proxy repository "<prefix>/<repo>" is
	// "<repo>" upstream. "" is the default upstream, used when no prefix
	// matches.
	Prefix string
	Client *upstream.Client
	// MirrorOf lists the registries whose mirror requests this upstream
	// serves (mirror.go): host[:port] names such as docker.io, or "*" for
	// any. Default: none but the upstream's own registry.
	MirrorOf []string
}

// Defaults of Options.
const (
	// DefaultPlatform is served to clients that do not accept the
	// synthesized list's media type.
	DefaultPlatform = "linux/amd64"
	// DefaultFollowRedirects: upstream redirects are followed.
	DefaultFollowRedirects = true
	// DefaultProgressTimeout: a body read or an answer write that makes no
	// progress for a minute ends the request.
	DefaultProgressTimeout = time.Minute
)

// Options configure a Proxy.
type Options struct {
	// Upstreams; at least one.
	Upstreams []Upstream
	// ReadOnly refuses pushes and deletes with UNSUPPORTED. Default false.
	ReadOnly bool
	// Policies for bare tags, matched against the proxy repository name.
	// Default: merge everywhere.
	Policies index.Rules
	// Grammar of member tags. Default: canonical suffixes only.
	Grammar index.Grammar
	// DefaultPlatform is served to clients that do not accept the
	// synthesized list's media type. Default DefaultPlatform.
	DefaultPlatform *v1.Platform
	// Cache of tag lists and descriptors (see resolve.CacheOptions for the
	// defaults).
	Cache resolve.CacheOptions
	// MaxManifestBytes caps member manifests, and manifests pushed through
	// the proxy. Default resolve.DefaultMaxManifestBytes.
	MaxManifestBytes int64
	// Concurrency bounds members resolved at once per group. Default
	// resolve.DefaultConcurrency.
	Concurrency int
	// Store keeps synthesized indexes by digest. Default: in memory,
	// store.DefaultMemoryBytes.
	Store store.Store
	// Content, when set, keeps immutable content (blobs, manifests by
	// digest) as it is served and serves it from there, so that what was
	// pulled keeps pulling when the upstream fails. Default nil: content
	// passes through.
	Content *content.Cache
	// FollowRedirects: upstream redirects of GET/HEAD (blob storage,
	// CDNs) are followed by the proxy, which streams the content; when
	// false they are passed to the client. Default
	// DefaultFollowRedirects.
	FollowRedirects *bool
	// Access controls who may use the proxy. Default nil: anyone.
	Access *Access
	// Logger for requests and synthesis findings. Default: silent.
	Logger *slog.Logger
	// MaxSearchGroups bounds the bare tags searched for a digest this
	// replica never served (resolve.Options.MaxSearchGroups).
	MaxSearchGroups int
	// ProgressTimeout ends a request whose body read or answer write makes
	// no progress for this long. Default DefaultProgressTimeout.
	ProgressTimeout time.Duration
	// MetricsAuth requires an authenticated user (any, with Access) for
	// /metrics. Default false.
	MetricsAuth bool
	// Registerer for Prometheus metrics. Default: a private registry,
	// served by Proxy.Metrics.
	Registerer prometheus.Registerer
}

// Proxy is the registry front-end. It is an http.Handler.
type Proxy struct {
	o       Options
	ups     []*up
	mirrors mirrors // registry → upstream, for mirror requests
	router  *mux.Router
	// getManifestH and getBlobH are the pull routes' handlers, which
	// ServeHTTP calls without the router.
	getManifestH, getBlobH http.Handler
	log                    *slog.Logger
	metrics                *metrics
	gather                 prometheus.Gatherer
	follow                 bool

	contentStats contentStats
	confirming   singleflight.Group // upstream confirmations under way
	// storeReadErrors are reads of the index store that failed (the index
	// was recomputed, or the request passed through).
	storeReadErrors atomic.Int64
}

// contentStats count what the content cache served (the server counts
// the bytes: sendfile bypasses the cache's readers).
type contentStats struct {
	hits, misses [2]atomic.Int64 // by content.Kind
	storeBytes   atomic.Int64
	// readErrors and writeErrors are the content cache's failures the
	// handlers met (the request went to the upstream instead).
	readErrors, writeErrors atomic.Int64
}

type up struct {
	prefix   string
	hub      bool // lists docker.io in MirrorOf: its names are Docker Hub's
	client   *upstream.Client
	cache    *resolve.Cache
	resolver *resolve.Resolver
}

// target is a request's repository, mapped to its upstream.
type target struct {
	up *up
	// name is the repository as the client names it.
	name string
	// repo is the repository on the upstream.
	repo string
	// ns is the registry a mirror request named (containerd's ns
	// parameter), "" for a request without one.
	ns string
}

// canonical is the repository's one name for rules and policies: the
// upstream's path under the prefix. Clients may spell one repository in
// several ways (on Docker Hub, hub/nginx is hub/library/nginx); every
// spelling must meet the same access rule and policy.
func (t target) canonical() string {
	if t.up == nil || t.up.prefix == "" {
		return t.repo
	}
	return t.up.prefix + "/" + t.repo
}

// key names a synthesized index in the store: upstream, repository, digest.
func (t target) key(d v1.Hash) store.Key {
	return store.Key{Registry: t.up.client.Host(), Repository: t.repo, Digest: d}
}

// New builds a Proxy. It does not contact the upstreams.
func New(o Options) (*Proxy, error) {
	if len(o.Upstreams) == 0 {
		return nil, errors.New("proxy: no upstream")
	}
	if err := o.Policies.Validate(); err != nil {
		return nil, fmt.Errorf("proxy: policies: %w", err)
	}
	if o.Access != nil {
		if err := o.Access.Validate(); err != nil {
			return nil, fmt.Errorf("proxy: %w", err)
		}
	}
	if o.DefaultPlatform == nil {
		d, _ := platform.Parse(DefaultPlatform)
		o.DefaultPlatform = &d
	}
	if o.Store == nil {
		o.Store = store.NewMemory(0)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxManifestBytes <= 0 {
		o.MaxManifestBytes = resolve.DefaultMaxManifestBytes
	}
	if o.ProgressTimeout <= 0 {
		o.ProgressTimeout = DefaultProgressTimeout
	}
	follow := DefaultFollowRedirects
	if o.FollowRedirects != nil {
		follow = *o.FollowRedirects
	}
	p := &Proxy{o: o, log: o.Logger, follow: follow}
	reg := o.Registerer
	if reg == nil {
		r := prometheus.NewRegistry()
		reg, p.gather = r, r
	}
	if err := p.addUpstreams(); err != nil {
		return nil, err
	}
	// Longest prefix first; the default ("") last.
	sort.Slice(p.ups, func(i, j int) bool { return len(p.ups[i].prefix) > len(p.ups[j].prefix) })
	m, err := newMetrics(reg, p.ups)
	if err != nil {
		return nil, err
	}
	p.metrics = m
	if err := registerStoreErrors(reg, p); err != nil {
		return nil, err
	}
	if o.Content != nil {
		if err := registerContent(reg, o.Content, &p.contentStats); err != nil {
			return nil, err
		}
	}
	p.routes()
	return p, nil
}

// addUpstreams gives every upstream its cache and resolver, and maps the
// registries they mirror.
func (p *Proxy) addUpstreams() error {
	seen := map[string]bool{}
	for _, u := range p.o.Upstreams {
		prefix := strings.Trim(u.Prefix, "/")
		if seen[prefix] {
			return fmt.Errorf("proxy: two upstreams with prefix %q", prefix)
		}
		seen[prefix] = true
		if u.Client == nil {
			return fmt.Errorf("proxy: upstream %q has no client", prefix)
		}
		co := p.o.Cache
		if co.Shared != nil {
			// One namespace per upstream (and prefix) in the shared cache.
			co.SharedPrefix = co.SharedPrefix + u.Client.Host() + "/" + prefix + ":"
			if co.Logger == nil {
				co.Logger = p.o.Logger
			}
		}
		cache := resolve.NewCache(u.Client, co)
		p.ups = append(p.ups, &up{
			prefix: prefix,
			client: u.Client,
			cache:  cache,
			resolver: resolve.New(cache, resolve.Options{
				Grammar: p.o.Grammar, MaxManifestBytes: p.o.MaxManifestBytes, Concurrency: p.o.Concurrency, Logger: p.o.Logger,
				Store: p.o.Store, Registry: u.Client.Host(), MaxSearchGroups: p.o.MaxSearchGroups,
			}),
		})
	}
	ms, err := newMirrors(p.o.Upstreams, p.ups)
	if err != nil {
		return err
	}
	p.mirrors = ms
	return nil
}

// ServeHTTP implements http.Handler. The pulls — GET and HEAD of a
// manifest or a blob — are routed by a scan of the path (hot); everything
// else, and any path the scan is not sure of, by the router.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		if route, vars, ok := pullRoute(r.URL.Path); ok {
			h := p.getBlobH
			if route == "manifest" {
				h = p.getManifestH
			}
			h.ServeHTTP(w, mux.SetURLVars(r, vars))
			return
		}
	}
	p.router.ServeHTTP(w, r)
}

// pullRoute is the route (its name) the router would pick for a GET or HEAD of path,
// when path is /v2/<name>/manifests/<reference> or /v2/<name>/blobs/<digest>
// (a last segment without a slash, a clean path: the router would not
// redirect it). The router's patterns take the last such segment, as this
// does; no earlier pattern can match such a path.
func pullRoute(path string) (string, map[string]string, bool) {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok || pathpkg.Clean(path) != path {
		return "", nil, false
	}
	for _, pr := range [...]struct{ route, sep, key string }{
		{"manifest", "/manifests/", "reference"}, {"blob", "/blobs/", "digest"},
	} {
		i := strings.LastIndex(rest, pr.sep)
		if i <= 0 {
			continue
		}
		last := rest[i+len(pr.sep):]
		if last == "" || strings.IndexByte(last, '/') >= 0 {
			continue
		}
		if strings.IndexByte(rest[:i], '\n') >= 0 {
			return "", nil, false // the router's name pattern (.+) stops at a line break
		}
		return pr.route, map[string]string{"name": rest[:i], pr.key: last}, true
	}
	return "", nil, false
}

// handler is a route's handler; it returns errors for the wrapper to
// write and log.
type handler func(w http.ResponseWriter, r *http.Request, t target) error

func (p *Proxy) routes() {
	r := mux.NewRouter()
	const name = "{name:.+}"
	r.Handle("/v2/", p.wrap("base", func(w http.ResponseWriter, r *http.Request, _ target) error {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "2")
		if r.Method != http.MethodHead {
			_, _ = w.Write([]byte("{}"))
		}
		return nil
	}, false)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/v2/_catalog", p.wrap("catalog", p.catalog, false)).Methods(http.MethodGet)
	r.Handle("/v2/"+name+"/tags/list", p.wrap("tags", p.tags, true)).Methods(http.MethodGet)
	p.getManifestH = p.wrap("manifest", p.getManifest, true)
	p.getBlobH = p.wrap("blob", p.getBlob, true)
	r.Handle("/v2/"+name+"/manifests/{reference}", p.getManifestH).Methods(http.MethodGet, http.MethodHead).Name("manifest")
	r.Handle("/v2/"+name+"/manifests/{reference}", p.wrap("manifest-write", p.writeManifest, true)).Methods(http.MethodPut, http.MethodDelete)
	r.Handle("/v2/"+name+"/blobs/uploads/", p.wrap("upload", p.startUpload, true)).Methods(http.MethodPost)
	r.Handle("/v2/"+name+"/blobs/uploads/{uuid}", p.wrap("upload", p.upload, true)).Methods(http.MethodGet, http.MethodPatch, http.MethodPut, http.MethodDelete)
	r.Handle("/v2/"+name+"/blobs/{digest}", p.getBlobH).Methods(http.MethodGet, http.MethodHead).Name("blob")
	r.Handle("/v2/"+name+"/blobs/{digest}", p.wrap("blob-delete", p.deleteBlob, true)).Methods(http.MethodDelete)
	r.Handle("/v2/"+name+"/referrers/{digest}", p.wrap("referrers", p.referrers, true)).Methods(http.MethodGet)
	r.Handle("/_manifold/content/"+name, p.wrap("content-purge", p.purgeContent, true)).Methods(http.MethodDelete)
	r.Handle("/healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) }))
	r.Handle("/readyz", http.HandlerFunc(p.readyz))
	if p.gather != nil && p.o.MetricsAuth && p.o.Access != nil {
		// Any authenticated user, never anonymous (anonymousRead is for
		// images, not for the proxy's internals).
		r.Handle("/metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, err := p.check(w, r, nil, "", "pull"); err != nil {
				writeError(w, r, err)
				return
			}
			p.Metrics().ServeHTTP(w, r)
		}))
	} else if p.gather != nil {
		r.Handle("/metrics", p.Metrics())
	}
	r.MethodNotAllowedHandler = p.wrap("unsupported", func(http.ResponseWriter, *http.Request, target) error {
		return apiErr(errcode.ErrorCodeUnsupported, "method not allowed here")
	}, false)
	r.NotFoundHandler = p.wrap("unknown", func(http.ResponseWriter, *http.Request, target) error {
		return &upstreamError{status: http.StatusNotFound, errs: []wireError{{Code: errcode.ErrorCodeUnsupported.String(), Message: "no such endpoint"}}, cause: errors.New("no route")}
	}, false)
	p.router = r
}

// wrap adapts a handler: it maps the repository, writes the error a
// handler returns, and logs and counts the request once.
func (p *Proxy) wrap(route string, h handler, repo bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := p.progress(w, r)
		defer rec.done()
		rec.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		var err error
		var t target
		if repo {
			t, r, err = p.requestTarget(r)
		}
		if err == nil && route != "unknown" {
			var user string
			user, err = p.authorize(rec, r, t.canonical())
			r = r.WithContext(withUser(r.Context(), user))
		}
		if err == nil {
			err = h(rec, r, t)
		}
		if err != nil && !rec.wrote {
			writeError(rec, r, err)
		}
		d := time.Since(start)
		p.metrics.requests.WithLabelValues(route, r.Method, fmt.Sprint(rec.status)).Inc()
		p.metrics.duration.WithLabelValues(route).Observe(d.Seconds())
		attrs := []any{"method", r.Method, "path", r.URL.Path, "route", route, "status", rec.status, "bytes", rec.bytes, "duration", d, "proto", r.Proto}
		if t.ns != "" {
			attrs = append(attrs, "ns", t.ns)
		}
		if err != nil {
			attrs = append(attrs, "error", upstream.Redact(err.Error()))
		}
		level := slog.LevelInfo
		if rec.status >= 500 {
			level = slog.LevelError
		}
		p.log.Log(r.Context(), level, "request", attrs...)
		if errors.Is(err, http.ErrAbortHandler) && rec.wrote {
			// The headers promised a body that cannot be completed: end
			// the connection so the client sees a broken transfer.
			panic(http.ErrAbortHandler)
		}
	})
}

// target maps a client repository name to an upstream: a name of
// registry ns when ns is set (a mirror request), else the proxy's name, by
// prefix. Without a prefix that matches or a default upstream, a name is
// Docker Hub's (dockerd's registry-mirrors send no ns) and goes to its
// mirror.
func (p *Proxy) target(name, ns string) (target, error) {
	if !validName(name) {
		return target{ns: ns}, apiErr(errcode.ErrorCodeNameInvalid, "invalid repository name %q: want lower-case path components of the distribution spec's grammar, at most 255 characters", name)
	}
	if ns != "" {
		return p.mirrorTarget(name, ns)
	}
	for _, u := range p.ups {
		switch {
		case u.prefix == "":
			return target{up: u, name: name, repo: u.repoPath(name)}, nil
		case strings.HasPrefix(name, u.prefix+"/"):
			return target{up: u, name: name, repo: u.repoPath(strings.TrimPrefix(name, u.prefix+"/"))}, nil
		}
	}
	if u := p.mirrors.lookup(upstream.DockerHub); u != nil {
		return target{up: u, name: name, repo: upstream.LibraryPath(name)}, nil
	}
	return target{}, apiErr(errcode.ErrorCodeNameUnknown, "repository %q matches no upstream prefix", name)
}

// repoPath is name (under the prefix) on u.
func (u *up) repoPath(name string) string {
	if u.hub {
		return upstream.LibraryPath(name)
	}
	return u.client.RepoPath(name)
}

// rule is the bare-tag rule of the repository, matched on its canonical
// name.
func (p *Proxy) rule(t target) index.Rule { return p.o.Policies.Match(t.canonical()) }

func (p *Proxy) policy(t target) index.Policy { return p.rule(t).Policy }

// readyz answers 200 when every upstream answers /v2/ (any HTTP answer,
// 401 included: it is up).
func (p *Proxy) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	for _, u := range p.ups {
		if err := u.client.Ping(ctx); err != nil {
			http.Error(w, fmt.Sprintf("upstream %s: %s", u.client.Host(), upstream.Redact(err.Error())), http.StatusServiceUnavailable)
			return
		}
	}
	_, _ = w.Write([]byte("ok\n"))
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
	// rc and timeout bound each write's progress (Options.ProgressTimeout).
	rc      *http.ResponseController
	timeout time.Duration
}

// progress starts a request's progress bounds: every read of its body and
// every write of its answer must make progress within ProgressTimeout, so
// a stalled upload or a client that stops reading a blob ends the request
// instead of holding its connection (and its upstream request) forever. A
// request that keeps moving is never cut, however long it takes.
func (p *Proxy) progress(w http.ResponseWriter, r *http.Request) *statusRecorder {
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK, rc: http.NewResponseController(w), timeout: p.o.ProgressTimeout}
	_ = rec.rc.SetWriteDeadline(time.Time{}) // none left over from the connection's previous request
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &progressBody{ReadCloser: r.Body, rc: rec.rc, timeout: p.o.ProgressTimeout}
	}
	return rec
}

// done bounds the server's own final flush of the answer too.
func (s *statusRecorder) done() { _ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout)) }

type progressBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
}

func (b *progressBody) Read(p []byte) (int, error) {
	_ = b.rc.SetReadDeadline(time.Now().Add(b.timeout))
	return b.ReadCloser.Read(p)
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

// ReadFrom keeps sendfile working through the recorder (io.Copy from an
// *os.File to the connection), in chunks of progressChunk so that each
// chunk gets its own write deadline, as each Write does.
func (s *statusRecorder) ReadFrom(src io.Reader) (int64, error) {
	s.wrote = true
	rf, ok := s.ResponseWriter.(io.ReaderFrom)
	if !ok {
		n, err := io.Copy(struct{ io.Writer }{s}, src)
		return n, err
	}
	// sendfile and splice look through one *io.LimitedReader to the file
	// or socket: io.CopyN (http.ServeContent) hands one in already, so
	// each chunk limits its reader rather than wrapping it again.
	inner, left := src, int64(-1)
	if lr, ok := src.(*io.LimitedReader); ok {
		inner, left = lr.R, lr.N
	}
	var total int64
	for {
		chunk := int64(progressChunk)
		if left >= 0 {
			chunk = min(chunk, left)
		}
		_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
		n, err := rf.ReadFrom(&io.LimitedReader{R: inner, N: chunk})
		total += n
		s.bytes += n
		if left >= 0 {
			left -= n
			src.(*io.LimitedReader).N = left
		}
		if err != nil || n < chunk || left == 0 {
			return total, err
		}
	}
}

// progressChunk is how much of a sendfile answer is written under one
// write deadline: small enough that a client still reading slowly (a
// quarter MiB per progress timeout) is never cut, large enough that the
// extra sendfile calls cost nothing measurable.
const progressChunk = 256 << 10

// Flush keeps streaming working through the recorder.
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

type userKey struct{}

func withUser(ctx context.Context, user string) context.Context {
	return context.WithValue(ctx, userKey{}, user)
}

func userOf(r *http.Request) string {
	u, _ := r.Context().Value(userKey{}).(string)
	return u
}
