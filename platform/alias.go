package platform

// aliases maps legacy architecture words, as per-arch tags and Docker's
// official-image namespaces spell them, to GOARCH and variant.
var aliases = map[string]struct{ arch, variant string }{
	"aarch64": {"arm64", ""},
	"arm64v8": {"arm64", "v8"},
	"arm32v7": {"arm", "v7"},
	"arm32v6": {"arm", "v6"},
	"arm32v5": {"arm", "v5"},
	"armhf":   {"arm", "v7"},
	"armel":   {"arm", "v6"},
	"armv7":   {"arm", "v7"},
	"armv6":   {"arm", "v6"},
	"armv5":   {"arm", "v5"},
	"x86_64":  {"amd64", ""},
	"i386":    {"386", ""},
	"ppc64el": {"ppc64le", ""},
}

// Alias maps a legacy architecture word (aarch64, arm64v8, arm32v5/6/7,
// armhf, armel, armv5/6/7, x86_64, i386, ppc64el) to GOARCH and the variant
// the word implies ("" when it implies none). ok is false for any other
// word, GOARCH words included.
func Alias(word string) (arch, variant string, ok bool) {
	a, ok := aliases[word]
	return a.arch, a.variant, ok
}
