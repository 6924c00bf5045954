package regtest_test

import (
	"net/http"
	"testing"

	"github.com/manifold-proxy/manifold/internal/regtest"
)

// TestRegistryStop: a stopped registry refuses connections; its Backend
// still serves what it holds.
func TestRegistryStop(t *testing.T) {
	r := regtest.NewRegistry(t)
	d := r.Push(t, "app", "1.0", regtest.PlatformImage(t, "linux/amd64", false))
	r.Stop()
	if resp, err := http.Get(r.URL + "/v2/"); err == nil {
		resp.Body.Close()
		t.Fatalf("GET /v2/ of a stopped registry: %d, want a refused connection", resp.StatusCode)
	}
	resp, _ := regtest.Get(t, http.MethodGet, r.Backend+"/v2/app/manifests/"+d.String(), regtest.AllManifestTypes...)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the Backend of a stopped registry: %d, want 200", resp.StatusCode)
	}
	r.Stop() // a second call does nothing
}
