package proxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/manifold-proxy/manifold/proxy"
	"github.com/manifold-proxy/manifold/upstream"
)

// FuzzHTTP: hostile paths, query strings, headers and bodies never panic
// the proxy, each request ends within its deadline, and every error a
// client sees is an OCI error envelope.
func FuzzHTTP(f *testing.F) {
	for _, s := range []struct{ method, path, query, accept, rng, body string }{
		{"GET", "/v2/app/manifests/1.0", "", "application/vnd.oci.image.index.v1+json", "", ""},
		{"HEAD", "/v2/app/manifests/sha256:" + strings.Repeat("a", 64), "", "*/*;q=0", "", ""},
		{"GET", "/v2/app/blobs/sha256:" + strings.Repeat("b", 64), "", "", "bytes=-5", ""},
		{"GET", "/v2/app/tags/list", "n=-1&last=%ff", "", "", ""},
		{"GET", "/v2/_catalog", "n=99999999999999999999", "", "", ""},
		{"POST", "/v2/app/blobs/uploads/", "mount=sha256:x&from=../../etc", "", "", "x"},
		{"PATCH", "/v2/app/blobs/uploads/..%2f..%2f", "_state=abc", "", "bytes=0-", "chunk"},
		{"PUT", "/v2/app/manifests/1.0", "", "", "", `{"schemaVersion":2,"manifests":[{}]}`},
		{"GET", "/v2/a/b/c/../../referrers/sha256:" + strings.Repeat("c", 64), "artifactType=%00", "", "", ""},
		{"DELETE", "/v2//manifests/", "", "", "", ""},
	} {
		f.Add(s.method, s.path, s.query, s.accept, s.rng, s.body)
	}
	up := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	f.Cleanup(up.Close)
	c, err := upstream.New(upstream.Options{URL: up.URL, Retry: upstream.Retry{Timeout: 2 * time.Second}})
	if err != nil {
		f.Fatal(err)
	}
	p, err := proxy.New(proxy.Options{Upstreams: []proxy.Upstream{{Client: c}}, MaxManifestBytes: 1 << 16})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, path, query, accept, rng, body string) {
		req, err := http.NewRequest(method, "http://proxy.test/", strings.NewReader(body))
		if err != nil {
			return
		}
		req.URL.Path, req.URL.RawQuery, req.RequestURI = path, query, ""
		req.Header.Set("Accept", accept)
		req.Header.Set("Range", rng)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		w := httptest.NewRecorder()
		p.ServeHTTP(w, req.WithContext(ctx))
		if ctx.Err() != nil {
			t.Fatalf("%s %s?%s did not end within its deadline", method, path, query)
		}
		if w.Code >= 400 && method != http.MethodHead && w.Body.Len() > 0 {
			var env struct {
				Errors []struct{ Code string } `json:"errors"`
			}
			if err := json.Unmarshal(bytes.TrimSpace(w.Body.Bytes()), &env); err != nil || len(env.Errors) == 0 || env.Errors[0].Code == "" {
				t.Fatalf("%s %s?%s: %d with a body that is no OCI error: %q", method, path, query, w.Code, w.Body.String())
			}
		}
	})
}
