package proxy

import (
	"regexp"
	"strings"
	"testing"
)

// pathGrammar is the distribution spec's repository name grammar, as a
// regular expression: the reference the scanner is checked against.
var pathGrammar = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)

// TestL3_NamesOfThePathGrammar: names with a domain, a port, an IPv6
// literal or uppercase passed validation (the reference grammar) and
// reached the upstream: a 500 with internal storage paths, or an upload
// started. Only the path grammar passes now.
func TestL3_NamesOfThePathGrammar(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		"app": true, "team/app": true, "a.b_c__d---e/f0": true, "library/nginx": true,
		"registry.example:5000/app": false, "localhost:5000/x": false, "[::1]/app": false, "Team/app": false,
		"a..b": false, "a___b": false, "-a": false, "a-": false, "a//b": false, "/a": false, "a/": false, "": false,
		strings.Repeat("a", 255): true, strings.Repeat("a", 256): false, "a._b": false,
	} {
		if got := validName(name); got != want {
			t.Errorf("validName(%q) = %v, want %v", name, got, want)
		}
	}
}

// FuzzName: the scanner agrees with the spec's grammar on every input.
func FuzzName(f *testing.F) {
	for _, s := range []string{"app", "team/app", "a.b_c__d--e", "a..b", "A", "a/b:5000", "[::1]/x", "a___b", "a-", "a/-b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		want := len(name) <= 255 && pathGrammar.MatchString(name)
		if got := validName(name); got != want {
			t.Fatalf("validName(%q) = %v, the grammar says %v", name, got, want)
		}
	})
}
