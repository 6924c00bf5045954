package upstream_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/upstream"
)

// TestRetryHonorsRetryAfter: a 429 with Retry-After is retried after the
// wait it asks for; uploads (requests with a body) are never retried.
func TestRetryHonorsRetryAfter(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	reg.Push(t, "x", "a", regtest.PlatformImage(t, "linux/amd64", false))
	var calls atomic.Int64
	var first, second atomic.Int64
	reg.SetFault(func(w http.ResponseWriter, r *http.Request, _ http.Handler) bool {
		if r.URL.Path != "/v2/x/tags/list" {
			return false
		}
		if calls.Add(1) == 1 {
			first.Store(time.Now().UnixNano())
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
		second.Store(time.Now().UnixNano())
		return false
	})
	c, err := upstream.New(upstream.Options{URL: reg.URL, Retry: upstream.Retry{Backoff: time.Millisecond}})
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
	reg.Reset()
	isPost := func(r *http.Request) bool { return r.Method == http.MethodPost }
	reg.SetFault(regtest.Refuse(isPost, http.StatusServiceUnavailable, "", ""))
	c2, _ := upstream.New(upstream.Options{URL: reg.URL})
	tr, err := c2.Transport(context.Background(), upstream.Scope("x", "pull", "push"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, reg.URL+"/v2/x/blobs/uploads/", strings.NewReader("body"))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := reg.Count(http.MethodPost); n != 1 {
		t.Errorf("POST sent %d times", n)
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
