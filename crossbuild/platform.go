package crossbuild

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/platform"
)

// Target is one platform to build: the platform the image declares and the
// Go environment that produces a binary for it.
type Target struct {
	// Platform is normalized as index writes it (arm always has a
	// variant, arm64/v8 and amd64/v1 have none). It names the tag.
	Platform v1.Platform
	// ConfigVariant is the variant written into the image config: arm's
	// v5–v7, arm64's v8 (like buildx) or v8.x/v9.x, amd64's v2–v4.
	ConfigVariant string
	// GoEnv is GOOS, GOARCH and the variant variable (GOARM, GOAMD64 or
	// GOARM64), always set explicitly so the host's defaults never leak in.
	GoEnv []string
}

// String is os/arch[/variant].
func (t Target) String() string { return platform.String(t.Platform) }

// Suffix is the platform part of the target's tags: os-arch[-variant].
func (t Target) Suffix() string { return index.FormatSuffix(t.Platform) }

// UnsupportedPlatformError refuses a platform no container runtime runs,
// or one Go cannot build.
type UnsupportedPlatformError struct {
	Platform string
	Reason   string
}

func (e *UnsupportedPlatformError) Error() string {
	return fmt.Sprintf("platform %s: %s", e.Platform, e.Reason)
}

// refusedOS says why an operating system Go can target is not a container
// platform. Only linux and windows images have runtimes that pull them by
// os/arch from an index.
var refusedOS = map[string]string{
	"darwin":    "no container runtime runs darwin images: macOS has no native containers (Docker Desktop runs linux images in a VM; build linux/arm64 or linux/amd64 for Macs)",
	"ios":       "no container runtime runs ios images",
	"android":   "Android runs apps, not container images (build linux/arm64 for Android-based devices running a container engine)",
	"js":        "js/wasm runs in a browser or Node.js, not in a container runtime",
	"wasip1":    "WebAssembly modules are not os/arch container images (wasm runtimes use their own packaging and platform conventions)",
	"plan9":     "no container runtime runs Plan 9 binaries",
	"freebsd":   "FreeBSD's OCI runtimes (ocijail, runj) are experimental and not supported",
	"aix":       "no OCI container runtime runs aix images",
	"dragonfly": "no OCI container runtime runs dragonfly images",
	"illumos":   "no OCI container runtime runs illumos images",
	"netbsd":    "no OCI container runtime runs netbsd images",
	"openbsd":   "no OCI container runtime runs openbsd images",
	"solaris":   "no OCI container runtime runs solaris images",
}

// ParseTarget parses os/arch[/variant], refusing what no container runtime
// runs and what Go cannot build. Whether a windows target has the base
// image it needs is checked later, with the bases.
func ParseTarget(s string) (Target, error) {
	p, err := platform.Parse(s)
	if err != nil {
		return Target{}, err
	}
	if p.OSVersion != "" {
		return Target{}, fmt.Errorf("platform %q: os.version comes from the base image, not the platform", s)
	}
	if reason, ok := refusedOS[p.OS]; ok {
		return Target{}, &UnsupportedPlatformError{Platform: s, Reason: reason}
	}
	if p.OS != "linux" && p.OS != "windows" {
		return Target{}, &UnsupportedPlatformError{Platform: s, Reason: "no OCI container runtime runs " + p.OS + " images"}
	}
	if p.OS == "windows" && p.Architecture != "amd64" && p.Architecture != "arm64" {
		return Target{}, &UnsupportedPlatformError{Platform: s, Reason: "Windows container images exist for amd64 and arm64 only"}
	}
	t := Target{Platform: p, GoEnv: []string{"GOOS=" + p.OS, "GOARCH=" + p.Architecture}}
	switch p.Architecture {
	case "arm":
		if p.Variant == "v8" {
			return Target{}, &UnsupportedPlatformError{Platform: s, Reason: "Go cannot build 32-bit arm/v8 (GOARM is 5, 6 or 7); use arm/v7, or arm64 for 64-bit"}
		}
		t.ConfigVariant = p.Variant
		t.GoEnv = append(t.GoEnv, "GOARM="+strings.TrimPrefix(p.Variant, "v"))
	case "amd64":
		level := p.Variant
		if level == "" {
			level = "v1"
		}
		t.ConfigVariant = p.Variant
		t.GoEnv = append(t.GoEnv, "GOAMD64="+level)
	case "arm64":
		t.ConfigVariant = p.Variant
		if t.ConfigVariant == "" {
			t.ConfigVariant = "v8"
		}
		level := t.ConfigVariant
		if !strings.Contains(level, ".") {
			level += ".0"
		}
		t.GoEnv = append(t.GoEnv, "GOARM64="+level)
	}
	return t, nil
}

// SortTargets orders targets as index entries are ordered
// (index.PlatformLess), the order of every listing.
func SortTargets(ts []Target) {
	sort.Slice(ts, func(i, j int) bool { return platform.Less(ts[i].Platform, ts[j].Platform) })
}

// allTargets is `--platform all`: every linux and windows pair of the Go
// toolchain's `go tool dist list` that is not marked broken, arm as arm/v7.
// Windows targets are kept; the caller drops them when no Windows base is
// set.
func allTargets(ctx context.Context, goBin, dir string, env []string) ([]Target, error) {
	cmd := exec.CommandContext(ctx, goBin, "tool", "dist", "list", "-json")
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go tool dist list: %w%s", err, stderrOf(err))
	}
	var pairs []struct {
		GOOS, GOARCH string
		Broken       bool
	}
	if err := json.Unmarshal(out, &pairs); err != nil {
		return nil, fmt.Errorf("go tool dist list: %w", err)
	}
	var ts []Target
	for _, p := range pairs {
		if p.Broken {
			continue
		}
		t, err := ParseTarget(p.GOOS + "/" + p.GOARCH)
		if err != nil {
			continue // not a container platform, or unknown to the grammar
		}
		ts = append(ts, t)
	}
	SortTargets(ts)
	return ts, nil
}
