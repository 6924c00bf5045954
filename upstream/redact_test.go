package upstream_test

import (
	"strings"
	"testing"

	"github.com/manifold-proxy/manifold/upstream"
)

// TestL4_Redact: presigned signatures, upload state tokens and URL
// credentials never survive into a message.
func TestL4_Redact(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		`Get "https://bucket.s3.amazonaws.com/docker/blobs/data?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA": dial tcp: refused`,
		`PATCH http://127.0.0.1:5000/v2/app/blobs/uploads/abc?_state=c2VjcmV0: 500`,
		`upstreams[0].url: "https://alice:s3cr3t@registry.example.com": want http://host[:port]`,
		`request path=/v2/app/blobs/uploads/abc query=_state=c2VjcmV0&digest=sha256:1`,
	} {
		out := upstream.Redact(in)
		for _, secret := range []string{"deadbeef", "AKIA", "c2VjcmV0", "s3cr3t", "alice"} {
			if strings.Contains(out, secret) {
				t.Errorf("Redact(%q) = %q keeps %q", in, out, secret)
			}
		}
		if !strings.Contains(out, "REDACTED") {
			t.Errorf("Redact(%q) = %q", in, out)
		}
	}
	if s := "GET https://registry.example.com/v2/app/manifests/1.0: 404"; upstream.Redact(s) != s {
		t.Errorf("a URL without secrets changed: %q", upstream.Redact(s))
	}
}
