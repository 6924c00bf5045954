package index

import (
	"fmt"
	"regexp"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// knownPlatforms is `go tool dist list` (Go 1.26): the os/arch pairs that
// exist. OCI's image-index spec takes its os and architecture values from
// GOOS and GOARCH, so this is also the set a registry client can match.
var knownPlatforms = map[string][]string{
	"aix":       {"ppc64"},
	"android":   {"386", "amd64", "arm", "arm64"},
	"darwin":    {"amd64", "arm64"},
	"dragonfly": {"amd64"},
	"freebsd":   {"386", "amd64", "arm", "arm64", "riscv64"},
	"illumos":   {"amd64"},
	"ios":       {"amd64", "arm64"},
	"js":        {"wasm"},
	"linux":     {"386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le", "mipsle", "ppc64", "ppc64le", "riscv64", "s390x"},
	"netbsd":    {"386", "amd64", "arm", "arm64"},
	"openbsd":   {"386", "amd64", "arm", "arm64", "ppc64", "riscv64"},
	"plan9":     {"386", "amd64", "arm"},
	"solaris":   {"amd64"},
	"wasip1":    {"wasm"},
	"windows":   {"386", "amd64", "arm64"},
}

// KnownPlatform reports whether os/arch is a real Go/OCI platform pair.
func KnownPlatform(os, arch string) bool {
	for _, a := range knownPlatforms[os] {
		if a == arch {
			return true
		}
	}
	return false
}

var (
	armVariant   = regexp.MustCompile(`^v[5-8]$`)
	arm64Variant = regexp.MustCompile(`^(v8(\.[0-9])?|v9(\.[0-5])?)$`)
	amd64Variant = regexp.MustCompile(`^v[1-4]$`)
)

// ValidVariant reports whether variant is a real CPU variant of arch as
// written in tags and configs: arm v5–v8, arm64 v8/v8.x/v9/v9.x, amd64 v1–v4.
// The empty variant is valid for every architecture.
func ValidVariant(arch, variant string) bool {
	if variant == "" {
		return true
	}
	switch arch {
	case "arm":
		return armVariant.MatchString(variant)
	case "arm64":
		return arm64Variant.MatchString(variant)
	case "amd64":
		return amd64Variant.MatchString(variant)
	}
	return false
}

// Normalize returns p in the form this package writes into index entries and
// compares platforms with. Two spellings of one platform normalize to the
// same value, as containerd's platforms.Normalize compares them (arm64 ≡
// arm64/v8, arm ≡ arm/v7, amd64 ≡ amd64/v1), but the value written is the
// one every client's matcher finds under every spelling a user types:
//   - arm64 is written with its variant, "v8" unless a later one is stated
//     ("v8.0" is "v8", "v9.0" is "v9"). go-containerregistry (crane) and
//     oras-go match a requested variant exactly, so an entry without one is
//     not found by `--platform linux/arm64/v8`; an entry with "v8" is found
//     by that and by `--platform linux/arm64`, and containerd, dockerd and
//     podman normalize both. "v8" is the OCI image-index spec's own value.
//   - arm is always written with its variant; arm alone is "v7".
//   - amd64 "v1" is the baseline and is written with no variant, as every
//     amd64 image in the wild is: a podman that asks for plain amd64 tries
//     the empty variant first.
//
// This is part of the synthesized bytes: it never changes again.
// os.version and os.features are kept as given.
func Normalize(p v1.Platform) v1.Platform {
	p.Variant = normalizeVariant(p.Architecture, p.Variant)
	return p
}

func normalizeVariant(arch, variant string) string {
	switch arch {
	case "arm64":
		switch variant {
		case "", "v8", "v8.0", "8", "8.0":
			return "v8"
		case "v9.0", "9", "9.0":
			return "v9"
		}
	case "amd64":
		if variant == "v1" {
			return ""
		}
	case "arm":
		switch variant {
		case "", "7":
			return "v7"
		case "5", "6", "8":
			return "v" + variant
		}
	}
	return variant
}

// defaultVariantOf is the variant an arch means when none is named, in
// Normalize's spelling: arm v7, arm64 v8, none for the rest (amd64 v1 is
// written as none).
func defaultVariantOf(arch string) string {
	switch arch {
	case "arm":
		return "v7"
	case "arm64":
		return "v8"
	}
	return ""
}

// normalizeArch maps the architecture spellings found in real image configs
// to GOARCH, as containerd does. It is applied to configs only: tags use the
// grammar, where aliases are opt-in.
func normalizeArch(arch, variant string) (string, string) {
	switch strings.ToLower(arch) {
	case "aarch64":
		return "arm64", variant
	case "x86_64", "x86-64":
		return "amd64", variant
	case "i386":
		return "386", ""
	case "armhf":
		return "arm", "v7"
	case "armel":
		return "arm", "v6"
	}
	return arch, variant
}

// ParsePlatform parses "os/arch[/variant][:os.version]" strictly: the pair
// must be a known platform and the variant a real variant of arch. The
// result is normalized.
func ParsePlatform(s string) (v1.Platform, error) {
	var p v1.Platform
	rest, osVersion, _ := strings.Cut(s, ":")
	parts := strings.Split(rest, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return p, fmt.Errorf("platform %q: want os/arch[/variant]", s)
	}
	p.OS, p.Architecture, p.OSVersion = parts[0], parts[1], osVersion
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	if !KnownPlatform(p.OS, p.Architecture) {
		return v1.Platform{}, fmt.Errorf("platform %q: %s/%s is not a known os/arch pair (go tool dist list)", s, p.OS, p.Architecture)
	}
	if !ValidVariant(p.Architecture, p.Variant) {
		return v1.Platform{}, fmt.Errorf("platform %q: %q is not a variant of %s", s, p.Variant, p.Architecture)
	}
	return Normalize(p), nil
}

// PlatformString formats p as os/arch[/variant][:os.version].
func PlatformString(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	if p.OSVersion != "" {
		s += ":" + p.OSVersion
	}
	return s
}

// samePlatform compares os, arch and normalized variant (not os.version).
func samePlatform(a, b v1.Platform) bool {
	a, b = Normalize(a), Normalize(b)
	return a.OS == b.OS && a.Architecture == b.Architecture && a.Variant == b.Variant
}
