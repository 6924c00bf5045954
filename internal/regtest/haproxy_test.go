package regtest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/manifold-proxy/manifold/internal/regtest"
)

// TestHAProxyRoundRobin: consecutive requests on one kept-alive client
// connection go to consecutive backends.
func TestHAProxyRoundRobin(t *testing.T) {
	var backends []string
	for i := range 3 {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprint(w, i)
		}))
		t.Cleanup(srv.Close)
		backends = append(backends, strings.TrimPrefix(srv.URL, "http://"))
	}
	h := regtest.StartHAProxy(t, backends)
	var got []string
	for range 6 {
		resp, body := regtest.Get(t, http.MethodGet, "http://"+h.Addr+"/")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET through haproxy: %d %s", resp.StatusCode, body)
		}
		got = append(got, string(body))
	}
	if s := strings.Join(got, ""); s != "012012" && s != "120120" && s != "201201" {
		t.Errorf("backends answered in the order %s, want round robin", s)
	}
}
