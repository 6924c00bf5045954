package proxy_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/proxy"
	"github.com/manifold-proxy/manifold/upstream"
)

// hangingUpstream accepts connections and never answers; it counts the
// connections open.
type hangingUpstream struct {
	ln   net.Listener
	mu   sync.Mutex
	open map[net.Conn]bool
}

func newHangingUpstream(t *testing.T) *hangingUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hangingUpstream{ln: ln, open: map[net.Conn]bool{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.open[c] = true
			h.mu.Unlock()
			go func() {
				// Read until the client closes, answering nothing.
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						break
					}
				}
				c.Close()
				h.mu.Lock()
				delete(h.open, c)
				h.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		h.mu.Lock()
		for c := range h.open {
			c.Close()
		}
		h.mu.Unlock()
	})
	return h
}

func (h *hangingUpstream) conns() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.open)
}

// TestM2_HangingUpstream: against an upstream that never answers,
// pass-through answered 502 after 180 s and bare tags after 120 s. Both now
// answer after the configured timeout (default 30 s; 1 s here), with an OCI
// error.
func TestM2_HangingUpstream(t *testing.T) {
	t.Parallel()
	if upstream.DefaultTimeout > 30*time.Second {
		t.Errorf("the default upstream timeout is %s, over 30 s", upstream.DefaultTimeout)
	}
	h := newHangingUpstream(t)
	c, err := upstream.New(upstream.Options{URL: "http://" + h.ln.Addr().String(), Retry: upstream.Retry{Timeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	srv := regtest.StartProxy(t, proxy.Options{Upstreams: []proxy.Upstream{{Client: c}}})
	for _, path := range []string{"/v2/app/blobs/sha256:" + strings.Repeat("a", 64), "/v2/app/manifests/1.0", "/v2/app/tags/list"} {
		start := time.Now()
		resp, body := regtest.Get(t, http.MethodGet, srv.URL+path)
		took := time.Since(start)
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "UNAVAILABLE") || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s: %d %s", path, resp.StatusCode, body)
		}
		if took > 3*time.Second {
			t.Errorf("%s: answered after %s with a 1 s timeout", path, took)
		}
	}
}

// TestM2_AbandonedRequests: 300 abandoned requests kept 300 upstream
// connections busy. Work nobody waits for is cancelled now, and the
// upstream's connections go away with the clients.
func TestM2_AbandonedRequests(t *testing.T) {
	t.Parallel()
	h := newHangingUpstream(t)
	c, _ := upstream.New(upstream.Options{URL: "http://" + h.ln.Addr().String(), Retry: upstream.Retry{Timeout: time.Minute}})
	srv := regtest.StartProxy(t, proxy.Options{Upstreams: []proxy.Upstream{{Client: c}}})
	var wg sync.WaitGroup
	for i := range 300 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			path := "/v2/app/manifests/1.0"
			if i%2 == 1 {
				path = "/v2/app/blobs/sha256:" + strings.Repeat("b", 64)
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for (h.conns() > 0 || c.InFlight() > 0) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n, f := h.conns(), c.InFlight(); n > 0 || f > 0 {
		t.Errorf("after every client gave up: %d upstream connections open, %d requests in flight", n, f)
	}
}
