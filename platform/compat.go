package platform

import (
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// VariantRank orders the variants of arch from oldest to newest CPU: arm
// v5 < v6 < v7 < v8, amd64 v1 < … < v4, arm64 v8.0 < v8.1 < … < v9.5. ok is
// false for architectures without ordered variants (where only the empty
// variant has a rank).
func VariantRank(arch, variant string) (rank int, ok bool) {
	switch arch {
	case "arm", "amd64":
		if variant == "" {
			variant = "v1"
			if arch == "arm" {
				variant = DefaultVariant(arch)
			}
		}
		n, err := strconv.Atoi(strings.TrimPrefix(variant, "v"))
		return n, err == nil
	case "arm64":
		if variant == "" {
			variant = DefaultVariant(arch)
		}
		major, minor, _ := strings.Cut(strings.TrimPrefix(variant, "v"), ".")
		ma, err1 := strconv.Atoi(major)
		mi := 0
		var err2 error
		if minor != "" {
			mi, err2 = strconv.Atoi(minor)
		}
		return ma*100 + mi, err1 == nil && err2 == nil
	}
	return 0, variant == ""
}

// RunsOn reports whether an image built for img runs on a CPU of platform
// cpu: same os and arch, and img's variant the same as or older than cpu's
// (arm/v6 userland runs on arm/v7; amd64 v1 code on v3). Both are
// normalized first.
func RunsOn(img, cpu v1.Platform) bool {
	img, cpu = Normalize(img), Normalize(cpu)
	if img.OS != cpu.OS || img.Architecture != cpu.Architecture {
		return false
	}
	ri, ok1 := VariantRank(img.Architecture, img.Variant)
	rc, ok2 := VariantRank(cpu.Architecture, cpu.Variant)
	if !ok1 || !ok2 {
		return img.Variant == cpu.Variant
	}
	return ri <= rc
}
