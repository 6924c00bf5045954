package regtest

import (
	"net/http/httptest"
	"testing"

	"github.com/manifold-proxy/manifold/proxy"
)

// StartProxy serves proxy.New(o) until the test ends.
func StartProxy(t testing.TB, o proxy.Options) *httptest.Server {
	t.Helper()
	p, err := proxy.New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv
}
