package upstream_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/manifold-proxy/manifold/upstream"
)

// redirecting is an upstream whose blob GETs redirect to target(), and a
// storage server counting what reaches it.
func redirecting(t *testing.T, tls bool, target func(storage string) string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte("internal secrets"))
	}))
	t.Cleanup(storage.Close)
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") {
			http.Redirect(w, r, target(storage.URL), http.StatusTemporaryRedirect)
			return
		}
		reg.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(h)
	if tls {
		srv.Close()
		srv = httptest.NewTLSServer(h)
	}
	t.Cleanup(srv.Close)
	return srv, &hits
}

// refused: the policy's refusal, or go-containerregistry's own check of
// IP literals (it refuses some redirects before any dial; names it lets
// through, which is what the dial-time policy is for).
func refused(err error) bool {
	return errors.Is(err, upstream.ErrRedirectRefused) || (err != nil && strings.Contains(err.Error(), "SSRF protection"))
}

var someDigest = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("a", 64)}

// TestM4_RedirectToInternalName: a redirect to `localhost` (or any name
// resolving to loopback) was followed and its body streamed to the client;
// synthesis reads went through go-containerregistry's weaker check. The
// policy now decides on the resolved address, for every read.
func TestM4_RedirectToInternalName(t *testing.T) {
	t.Parallel()
	for name, target := range map[string]func(string) string{
		"localhost":   func(s string) string { return strings.Replace(s, "127.0.0.1", "localhost", 1) + "/x" },
		"ipv4-mapped": func(s string) string { return strings.Replace(s, "127.0.0.1", "[::ffff:127.0.0.1]", 1) + "/x" },
		"loopback":    func(s string) string { return s + "/x" },
		"unspecified": func(s string) string { return strings.Replace(s, "127.0.0.1", "0.0.0.0", 1) + "/x" },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv, hits := redirecting(t, false, target)
			c, err := upstream.New(upstream.Options{URL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			upstream.AssumePublic(c)
			_, err = c.Blob(context.Background(), "app", someDigest, 1<<20)
			if !refused(err) {
				t.Errorf("redirect from a public upstream to %s: err = %v, want a refusal", name, err)
			}
			if hits.Load() != 0 {
				t.Errorf("the internal server was reached")
			}
		})
	}
}

// TestM4_InternalUpstreamMayRedirectInternally: an internal registry sending
// blobs to internal storage is followed (the same trust zone).
func TestM4_InternalUpstreamMayRedirectInternally(t *testing.T) {
	t.Parallel()
	srv, hits := redirecting(t, false, func(s string) string { return strings.Replace(s, "127.0.0.1", "localhost", 1) + "/x" })
	c, _ := upstream.New(upstream.Options{URL: srv.URL})
	// The blob is not what the digest says: the read is refused after the
	// storage answered, which proves the redirect was followed.
	_, err := c.Blob(context.Background(), "app", someDigest, 1<<20)
	if errors.Is(err, upstream.ErrRedirectRefused) || hits.Load() != 1 {
		t.Errorf("internal upstream to internal storage: %v (storage hits %d)", err, hits.Load())
	}
}

// TestM4_NoHTTPSDowngrade: an HTTPS upstream's redirect to plain HTTP is
// refused, even for synthesis reads.
func TestM4_NoHTTPSDowngrade(t *testing.T) {
	t.Parallel()
	srv, hits := redirecting(t, true, func(s string) string { return s + "/x" })
	c, err := upstream.New(upstream.Options{URL: srv.URL, InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Blob(context.Background(), "app", someDigest, 1<<20); !errors.Is(err, upstream.ErrRedirectRefused) || hits.Load() != 0 {
		t.Errorf("HTTPS → HTTP: %v (hits %d)", err, hits.Load())
	}
}

// TestM4_AddressClasses: the ranges the policy refuses, checked on the
// addresses themselves (no test dials outside loopback).
func TestM4_AddressClasses(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]string{
		"127.0.0.1": "internal", "::1": "internal", "::ffff:127.0.0.1": "internal",
		"10.1.2.3": "internal", "172.16.0.1": "internal", "192.168.1.1": "internal", "100.64.0.1": "internal", "fd00::1": "internal",
		"169.254.169.254": "forbidden", "::ffff:169.254.169.254": "forbidden", "fe80::1": "forbidden", "0.0.0.0": "forbidden", "::": "forbidden", "224.0.0.1": "forbidden", "0.1.2.3": "forbidden",
		"8.8.8.8": "public", "2001:4860:4860::8888": "public", "::ffff:8.8.8.8": "public",
	} {
		if got := upstream.AddressClass(addr); got != want {
			t.Errorf("%s: %s, want %s", addr, got, want)
		}
	}
}
