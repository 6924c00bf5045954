package proxy_test

import (
	"strings"
	"testing"

	"github.com/manifold-proxy/manifold/proxy"
)

func TestAccept(t *testing.T) {
	t.Parallel()
	const list = "application/vnd.docker.distribution.manifest.list.v2+json"
	tests := []struct {
		values []string
		allows bool
	}{
		{nil, true},
		{[]string{""}, true},
		{[]string{list}, true},
		{[]string{"application/vnd.oci.image.index.v1+json", list}, true},
		{[]string{"a/b, " + list + ";q=0.1"}, true},
		{[]string{"*/*"}, true},
		{[]string{"application/*"}, true},
		{[]string{"application/*;q=0"}, false},
		{[]string{"*/*, " + list + ";q=0"}, false},
		{[]string{list + ";q=0, */*"}, false},
		{[]string{"application/vnd.docker.distribution.manifest.v2+json"}, false},
		{[]string{"APPLICATION/VND.DOCKER.DISTRIBUTION.MANIFEST.LIST.V2+JSON"}, true},
		{[]string{list + ";q=1.5"}, true}, // malformed q: range skipped, nothing left → no preference
		{[]string{"text/plain;q=x, " + list}, true},
		{[]string{"text/plain"}, false},
	}
	for _, tt := range tests {
		if got := proxy.ParseAccept(tt.values).Allows(list); got != tt.allows {
			t.Errorf("Accept %q allows list = %v, want %v", tt.values, got, tt.allows)
		}
	}
}

// FuzzAccept: the parser never panics, and splitting one header into
// several lines (dockerd) never changes the answer.
func FuzzAccept(f *testing.F) {
	for _, s := range []string{
		"application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json, */*",
		"text/html;q=0.5, */*;q=0", "a/*;q=1.0", ";;;", "*/*;q=abc", "a/b;x=\"y,z\"",
	} {
		f.Add(s, "application/vnd.oci.image.index.v1+json")
	}
	f.Fuzz(func(t *testing.T, header, mediaType string) {
		one := proxy.ParseAccept([]string{header})
		many := proxy.ParseAccept(strings.Split(header, ","))
		if strings.Contains(header, `"`) {
			return // quoted commas: splitting by hand is not what a client does
		}
		if one.Allows(mediaType) != many.Allows(mediaType) {
			t.Fatalf("%q: one line says %v, split lines say %v", header, one.Allows(mediaType), many.Allows(mediaType))
		}
	})
}
