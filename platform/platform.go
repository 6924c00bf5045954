package platform

import (
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// knownPairs is `go tool dist list` (Go 1.26): the os/arch pairs that
// exist. OCI's image-index spec takes its os and architecture values from
// GOOS and GOARCH, so this is also the set a registry client can match.
var knownPairs = map[string][]string{
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

// Known reports whether os/arch is a real Go/OCI platform pair.
func Known(os, arch string) bool {
	for _, a := range knownPairs[os] {
		if a == arch {
			return true
		}
	}
	return false
}

// ValidVariant reports whether variant is a real CPU variant of arch as
// written in tags and configs: arm v5–v8, arm64 v8/v8.x/v9/v9.x, amd64 v1–v4.
// The empty variant is valid for every architecture.
func ValidVariant(arch, variant string) bool {
	if variant == "" {
		return true
	}
	switch arch {
	case "arm":
		return len(variant) == 2 && variant[0] == 'v' && '5' <= variant[1] && variant[1] <= '8'
	case "arm64":
		// v8, v8.0–v8.9, v9, v9.0–v9.5.
		if len(variant) < 2 || variant[0] != 'v' || (variant[1] != '8' && variant[1] != '9') {
			return false
		}
		minor := variant[2:]
		last := byte('9')
		if variant[1] == '9' {
			last = '5'
		}
		return minor == "" || len(minor) == 2 && minor[0] == '.' && '0' <= minor[1] && minor[1] <= last
	case "amd64":
		return len(variant) == 2 && variant[0] == 'v' && '1' <= variant[1] && variant[1] <= '4'
	}
	return false
}

// Normalize returns p in the form manifold writes into index entries and
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
	p.Variant = NormalizeVariant(p.Architecture, p.Variant)
	return p
}

// NormalizeVariant is the variant part of Normalize.
func NormalizeVariant(arch, variant string) string {
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

// DefaultVariant is the variant an arch means when none is named, in
// Normalize's spelling: arm v7, arm64 v8, none for the rest (amd64 v1 is
// written as none).
func DefaultVariant(arch string) string {
	switch arch {
	case "arm":
		return "v7"
	case "arm64":
		return "v8"
	}
	return ""
}

// NormalizeArch maps the architecture spellings found in real image
// configs to GOARCH, as containerd does (aarch64, x86_64, i386, armhf,
// armel). It is for configs and index entries written by other tools; tags
// use the grammar, where such words are opt-in aliases (see Alias).
func NormalizeArch(arch, variant string) (string, string) {
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

// Parse parses "os/arch[/variant][:os.version]" strictly: the pair must be
// a known platform and the variant a real variant of arch. The result is
// normalized.
func Parse(s string) (v1.Platform, error) {
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
	if !Known(p.OS, p.Architecture) {
		return v1.Platform{}, fmt.Errorf("platform %q: %s/%s is not a known os/arch pair (go tool dist list)", s, p.OS, p.Architecture)
	}
	if !ValidVariant(p.Architecture, p.Variant) {
		return v1.Platform{}, fmt.Errorf("platform %q: %q is not a variant of %s", s, p.Variant, p.Architecture)
	}
	return Normalize(p), nil
}

// String formats p as os/arch[/variant][:os.version], as given (callers
// normalize first when they want the written form).
func String(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	if p.OSVersion != "" {
		s += ":" + p.OSVersion
	}
	return s
}

// Base is p's os, arch and normalized variant, without os.version and
// os.features: what a tag suffix, a `require` entry or a matrix column
// names.
func Base(p v1.Platform) v1.Platform {
	return Normalize(v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant})
}

// Same compares os, arch and normalized variant (not os.version).
func Same(a, b v1.Platform) bool {
	a, b = Base(a), Base(b)
	return a.OS == b.OS && a.Architecture == b.Architecture && a.Variant == b.Variant
}

// Key identifies a normalized platform whole (os, arch, variant,
// os.version, os.features): two index entries with the same Key are
// duplicates.
func Key(p v1.Platform) string {
	return strings.Join([]string{p.OS, p.Architecture, p.Variant, p.OSVersion, strings.Join(p.OSFeatures, ",")}, "\x00")
}

// Less is the order of index entries and of every listing of platforms:
// (os, arch, variant, os.version, os.features), with each architecture's
// default variant (arm v7, arm64 v8, amd64's none) before its others.
// Clients that match a request without a variant to the first entry of the
// arch (go-containerregistry, oras-go) then pick what `linux/arm` means
// everywhere else, arm/v7, and not the arm/v5 or arm/v6 that a plain
// variant order lists first. p and q are normalized.
func Less(p, q v1.Platform) bool { return orderKey(p) < orderKey(q) }

func orderKey(p v1.Platform) string {
	if p.Variant == DefaultVariant(p.Architecture) {
		p.Variant = ""
	} else {
		p.Variant = "\x01" + p.Variant
	}
	return Key(p)
}
