package upstream_test

import (
	"testing"

	"github.com/manifold-proxy/manifold/upstream"
)

// TestParseRegistry: a registry is named as image references name it, and
// Docker Hub's three hosts are one registry, docker.io.
func TestParseRegistry(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"docker.io":              "docker.io",
		"index.docker.io":        "docker.io",
		"registry-1.docker.io":   "docker.io",
		"Docker.IO":              "docker.io",
		"ghcr.io":                "ghcr.io",
		"registry.example.test":  "registry.example.test",
		"127.0.0.1:5000":         "127.0.0.1:5000",
		"[::1]:5000":             "[::1]:5000",
		"localhost":              "localhost",
		"my-registry.internal:1": "my-registry.internal:1",
	} {
		if got, err := upstream.ParseRegistry(in); err != nil || got != want {
			t.Errorf("ParseRegistry(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "*", "https://docker.io", "docker.io/library", "host:port", "host:0", "host:65536",
		"a..b", "-a.b", "a_b.c", "user@host", "host name", "host?x"} {
		if got, err := upstream.ParseRegistry(bad); err == nil {
			t.Errorf("ParseRegistry(%q) = %q, want an error", bad, got)
		}
	}
}

func TestLibraryPath(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"nginx": "library/nginx", "library/nginx": "library/nginx", "demo/app": "demo/app"} {
		if got := upstream.LibraryPath(in); got != want {
			t.Errorf("LibraryPath(%q) = %q, want %q", in, got, want)
		}
	}
}
