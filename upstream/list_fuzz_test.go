package upstream

import (
	"net/url"
	"testing"
)

// FuzzNextPage: a hostile Link header never panics and never leads off the
// listing's scheme, host and path.
func FuzzNextPage(f *testing.F) {
	for _, s := range []string{
		`</v2/app/tags/list?last=b&n=2>; rel="next"`, `<http://evil/v2/app/tags/list>; rel="next"`,
		`<//evil/x>; rel="next"`, `</v2/app/tags/list?n=1>; rel=next`, `<>; rel="next"`, `<`, `;;;,,,`,
		`</v2/other/tags/list>; rel="next", </v2/app/tags/list?x>; rel="next"`,
	} {
		f.Add(s)
	}
	base, _ := url.Parse("https://registry.example/v2/app/tags/list")
	f.Fuzz(func(t *testing.T, link string) {
		u, err := nextPage(base, link)
		if err != nil || u == nil {
			return
		}
		if u.Scheme != base.Scheme || u.Host != base.Host || u.Path != base.Path {
			t.Fatalf("Link %q leads to %s", link, u)
		}
	})
}
