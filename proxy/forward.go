package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// forwardOpts tune one pass-through request.
type forwardOpts struct {
	// path on the upstream (the proxy path with the repository mapped).
	path string
	// query replaces the request's raw query when set.
	query *string
	// scopes for the upstream token.
	scopes []string
	// onSuccess runs after a 2xx answer (cache invalidation after writes).
	onSuccess func()
}

// forward passes the request through to the upstream and streams the
// answer back unbuffered: status, headers (Range/206, Content-Length,
// Docker-Content-Digest) and body as upstream sent them. Client credentials
// for the proxy are never forwarded; the upstream transport adds the
// proxy's own. Location and Link headers that point into the upstream are
// rewritten to the proxy's names.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, t target, o forwardOpts) error {
	tr, err := p.transport(r, t, o.scopes)
	if err != nil {
		return err
	}
	if p.follow {
		tr = &redirectFollower{inner: tr}
	}
	query := r.URL.RawQuery
	if o.query != nil {
		query = *o.query
	}
	var failed error
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = t.up.client.URL(o.path, query)
			pr.Out.Host = pr.Out.URL.Host
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Del("Cookie")
		},
		Transport:  tr,
		BufferPool: copyBuffers,
		ModifyResponse: func(resp *http.Response) error {
			p.metrics.upstream.WithLabelValues(resp.Request.Method, statusClass(resp.StatusCode)).Inc()
			resp.Header.Del("Docker-Distribution-Api-Version") // the proxy sets its own
			if resp.StatusCode == http.StatusUnauthorized {
				// Upstream refused the proxy's credentials. A 401 with
				// upstream's challenge would ask the client to log in to the
				// proxy, which cannot help: say what happened instead.
				refused(resp, t)
				return nil
			}
			p.rewriteHeaders(resp.Header, t)
			if resp.StatusCode >= 400 {
				ociEnvelope(resp)
			}
			if resp.StatusCode/100 == 2 && o.onSuccess != nil {
				o.onSuccess()
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			failed = err
			if errors.Is(err, context.Canceled) {
				return
			}
			writeError(w, r, fmt.Errorf("upstream %s unreachable: %w", t.up.client.Host(), err))
		},
	}
	rp.ServeHTTP(w, r)
	return failed
}

// copyBuffers are the buffers answers are copied through: 256 KiB, eight
// times httputil's default, so a blob costs an eighth of the reads, writes
// and deadline updates.
var copyBuffers = &bufferPool{size: 256 << 10}

type bufferPool struct {
	size int
	pool sync.Pool
}

func (b *bufferPool) Get() []byte {
	if p, ok := b.pool.Get().(*[]byte); ok {
		return *p
	}
	return make([]byte, b.size)
}

func (b *bufferPool) Put(p []byte) { b.pool.Put(&p) }

// transport picks the upstream transport for r. A request without a body,
// or whose body the handler made replayable (a manifest, read whole for
// its size check), may be resent after a token renewal: any transport does.
// Any other body (blob chunks, monolithic uploads) is streamed, never
// buffered, and sent once, so its transport has a token at most a minute
// old: its one send is not refused for an expired token.
func (p *Proxy) transport(r *http.Request, t target, scopes []string) (http.RoundTripper, error) {
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody || r.GetBody != nil {
		return t.up.client.Transport(r.Context(), scopes...)
	}
	return t.up.client.FreshTransport(r.Context(), time.Minute, scopes...)
}

func statusClass(code int) string {
	return string(rune('0'+code/100)) + "xx"
}

// rewriteHeaders maps upstream URLs in Location and Link to proxy URLs.
func (p *Proxy) rewriteHeaders(h http.Header, t target) {
	if loc := h.Get("Location"); loc != "" {
		h.Set("Location", p.rewriteURL(loc, t))
	}
	if links := h.Values("Link"); len(links) > 0 {
		h.Del("Link")
		for _, l := range links {
			start, end := strings.Index(l, "<"), strings.Index(l, ">")
			if start >= 0 && end > start {
				l = l[:start+1] + p.rewriteURL(l[start+1:end], t) + l[end:]
			}
			h.Add("Link", l)
		}
	}
}

// rewriteURL turns an upstream URL (absolute or relative) under
// /v2/<repo>/ into the proxy's relative URL under /v2/<name>/. URLs to
// other hosts (blob storage redirects) are left alone.
func (p *Proxy) rewriteURL(raw string, t target) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	if u.Host != "" && u.Host != t.up.client.Host() {
		return raw
	}
	prefix := "/v2/" + t.repo + "/"
	if !strings.HasPrefix(u.Path, prefix) {
		return raw
	}
	out := url.URL{Path: "/v2/" + t.name + "/" + strings.TrimPrefix(u.Path, prefix), RawQuery: u.RawQuery}
	return out.String()
}

// redirectFollower follows redirects of GET and HEAD requests (blob
// storage, CDNs) so the proxy streams the content itself. The upstream
// transport only adds credentials for the upstream host, so nothing secret
// goes to the redirect target. The client never chooses the target: only an
// upstream's answer does, and the upstream transport's policy limits where
// it may lead.
type redirectFollower struct {
	inner http.RoundTripper
}

func (f *redirectFollower) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return f.inner.RoundTrip(req)
	}
	c := &http.Client{Transport: f.inner, CheckRedirect: f.checkRedirect}
	out := req.Clone(req.Context())
	out.RequestURI = ""
	return c.Do(out)
}

// checkRedirect limits a redirect chain to 5 hops. Where a hop may lead is
// the upstream transport's redirect policy (upstream/guard.go), decided on
// the resolved address when the connection is made: never from HTTPS to
// HTTP, never to a link-local address, never from a public upstream to a
// loopback or private one.
func (f *redirectFollower) checkRedirect(_ *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("too many redirects")
	}
	return nil
}

// maxErrorBody is the most of an upstream error body read to check it.
const maxErrorBody = 64 << 10

// ociEnvelope makes an upstream error answer one a registry client can
// read: a body that is not an OCI error envelope (a bare 503, a text/plain
// 404 from a load balancer) is replaced by one whose code follows the
// status, and a 429 or 5xx without Retry-After gets one.
func ociEnvelope(resp *http.Response) {
	if (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500) && resp.Header.Get("Retry-After") == "" {
		resp.Header.Set("Retry-After", defaultRetryAfter)
	}
	if resp.Request.Method == http.MethodHead {
		return
	}
	head, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var env struct {
		Errors []wireError `json:"errors"`
	}
	if err == nil && json.Unmarshal(head, &env) == nil && len(env.Errors) > 0 && env.Errors[0].Code != "" {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(head), resp.Body), resp.Body}
		return
	}
	resp.Body.Close()
	_, errs := fromTransport(&transport.Error{StatusCode: resp.StatusCode})
	body, _ := json.Marshal(map[string][]wireError{"errors": errs})
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Type", "application/json")
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	resp.Header.Del("Content-Encoding")
}

// refused rewrites an upstream 401 into a 403 naming the cause.
func refused(resp *http.Response, t target) {
	_, errs := fromTransport(&transport.Error{StatusCode: http.StatusUnauthorized, Errors: []transport.Diagnostic{{
		Code: transport.UnauthorizedErrorCode, Message: "authentication required by " + t.up.client.Host(),
	}}})
	body, _ := json.Marshal(map[string][]wireError{"errors": errs})
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.StatusCode = http.StatusForbidden
	resp.Status = "403 Forbidden"
	resp.ContentLength = int64(len(body))
	resp.Header.Del("Www-Authenticate")
	resp.Header.Set("Content-Type", "application/json")
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
}
