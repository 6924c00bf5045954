package upstream_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/manifold-proxy/manifold/upstream"
)

// TestRetryHonorsRetryAfter: a 429 with Retry-After is retried after the
// wait it asks for; uploads (requests with a body) are never retried.
func TestRetryHonorsRetryAfter(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	var first, second atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		switch calls.Add(1) {
		case 1:
			first.Store(time.Now().UnixNano())
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		default:
			second.Store(time.Now().UnixNano())
			w.Write([]byte(`{"name":"x","tags":["a"]}`))
		}
	}))
	defer srv.Close()
	c, err := upstream.New(upstream.Options{URL: srv.URL, Retry: upstream.Retry{Backoff: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	tags, err := c.Tags(context.Background(), "x")
	if err != nil || len(tags) != 1 {
		t.Fatalf("tags %v %v", tags, err)
	}
	if wait := time.Duration(second.Load() - first.Load()); wait < 900*time.Millisecond {
		t.Errorf("retried after %s, Retry-After said 1s", wait)
	}

	// A POST is sent once whatever the answer.
	var posts atomic.Int64
	srv2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posts.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv2.Close()
	c2, _ := upstream.New(upstream.Options{URL: srv2.URL})
	tr, err := c2.Transport(context.Background(), upstream.Scope("x", "pull", "push"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, srv2.URL+"/v2/x/blobs/uploads/", strings.NewReader("body"))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if posts.Load() != 1 {
		t.Errorf("POST sent %d times", posts.Load())
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "ftp://x", "http://", "https://host/v2/", "host:5000"} {
		if _, err := upstream.New(upstream.Options{URL: bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	c, err := upstream.New(upstream.Options{URL: "https://registry-1.docker.io"})
	if err != nil {
		t.Fatal(err)
	}
	if c.RepoPath("nginx") != "library/nginx" || c.RepoPath("a/b") != "a/b" {
		t.Errorf("Docker Hub official images live under library/")
	}
}

// TestPasswordFileRotation: the password is read when credentials are
// needed, so a rotated secret is used without a restart.
func TestPasswordFileRotation(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/pw"
	if err := os.WriteFile(path, []byte("one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := upstream.PasswordFile("ci", path)
	c, err := a.Authorization()
	if err != nil || c.Username != "ci" || c.Password != "one" {
		t.Fatalf("%+v %v", c, err)
	}
	if err := os.WriteFile(path, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, _ := a.Authorization(); c.Password != "two" {
		t.Errorf("rotated password not read: %q", c.Password)
	}
}
