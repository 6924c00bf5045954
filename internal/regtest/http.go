package regtest

import (
	"io"
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"
)

// AllManifestTypes is an Accept set naming every manifest type, one per
// header line.
var AllManifestTypes = []string{
	string(types.OCIImageIndex), string(types.DockerManifestList),
	string(types.OCIManifestSchema1), string(types.DockerManifestSchema2),
}

// Get sends method to url with the given Accept header lines (each its own
// line, as dockerd sends them) and returns the response and its body.
func Get(t testing.TB, method, url string, accept ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range accept {
		req.Header.Add("Accept", a)
	}
	return Do(t, req)
}

// Do sends req with the default client and returns the response and its
// body, read to the end and closed.
func Do(t testing.TB, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	return DoWith(t, http.DefaultClient, req)
}

// DoWith is Do with client c (one that trusts a test's CA, say).
func DoWith(t testing.TB, c *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}
