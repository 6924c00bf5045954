package platform_test

import (
	"regexp"
	"slices"
	"sort"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/manifold-proxy/manifold/platform"
)

func TestParse(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"linux/amd64":                   "linux/amd64",
		"linux/amd64/v1":                "linux/amd64",
		"linux/amd64/v3":                "linux/amd64/v3",
		"linux/arm":                     "linux/arm/v7",
		"linux/arm/v6":                  "linux/arm/v6",
		"linux/arm64":                   "linux/arm64/v8",
		"linux/arm64/v8":                "linux/arm64/v8",
		"linux/arm64/v8.0":              "linux/arm64/v8",
		"linux/arm64/v8.2":              "linux/arm64/v8.2",
		"linux/arm64/v9.0":              "linux/arm64/v9",
		"windows/amd64:10.0.17763.1234": "windows/amd64:10.0.17763.1234",
		"linux/arm/v9":                  "",
		"linux":                         "",
		"linux/amd64/v2/x":              "",
		"darwin/s390x":                  "",
		"Linux/AMD64":                   "",
	} {
		p, err := platform.Parse(in)
		got := ""
		if err == nil {
			got = platform.String(p)
		}
		if got != want {
			t.Errorf("Parse(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestWrittenForm is the table of written forms (docs/serving.md "Synthesis", rule
// 4): every spelling of a platform normalizes to the one value written.
func TestWrittenForm(t *testing.T) {
	t.Parallel()
	for written, spellings := range map[string][]v1.Platform{
		"linux/arm64/v8": {{OS: "linux", Architecture: "arm64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}, {OS: "linux", Architecture: "arm64", Variant: "8"}, {OS: "linux", Architecture: "arm64", Variant: "v8.0"}},
		"linux/arm64/v9": {{OS: "linux", Architecture: "arm64", Variant: "v9"}, {OS: "linux", Architecture: "arm64", Variant: "v9.0"}},
		"linux/arm/v7":   {{OS: "linux", Architecture: "arm"}, {OS: "linux", Architecture: "arm", Variant: "v7"}, {OS: "linux", Architecture: "arm", Variant: "7"}},
		"linux/arm/v5":   {{OS: "linux", Architecture: "arm", Variant: "v5"}, {OS: "linux", Architecture: "arm", Variant: "5"}},
		"linux/amd64":    {{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "amd64", Variant: "v1"}},
		"linux/amd64/v3": {{OS: "linux", Architecture: "amd64", Variant: "v3"}},
	} {
		for _, p := range spellings {
			if got := platform.String(platform.Normalize(p)); got != written {
				t.Errorf("Normalize(%s) = %s, want %s", platform.String(p), got, written)
			}
			w, _ := platform.Parse(written)
			if !platform.Same(p, w) {
				t.Errorf("Same(%s, %s) = false", platform.String(p), written)
			}
		}
	}
}

func TestLess(t *testing.T) {
	t.Parallel()
	var ps []v1.Platform
	for _, s := range []string{"linux/s390x", "linux/arm/v5", "linux/arm64/v9", "linux/arm/v6", "linux/amd64/v3", "linux/arm", "linux/amd64", "linux/arm64", "linux/386", "windows/amd64:10.0.2", "windows/amd64:10.0.1"} {
		p, err := platform.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return platform.Less(ps[i], ps[j]) })
	var got []string
	for _, p := range ps {
		got = append(got, platform.String(p))
	}
	want := []string{"linux/386", "linux/amd64", "linux/amd64/v3", "linux/arm/v7", "linux/arm/v5", "linux/arm/v6", "linux/arm64/v8", "linux/arm64/v9", "linux/s390x", "windows/amd64:10.0.1", "windows/amd64:10.0.2"}
	if !slices.Equal(got, want) {
		t.Errorf("order\n got %v\nwant %v", got, want)
	}
}

func TestRunsOn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		img, cpu string
		want     bool
	}{
		{"linux/arm/v6", "linux/arm/v7", true},
		{"linux/arm/v7", "linux/arm/v6", false},
		{"linux/amd64", "linux/amd64/v3", true},
		{"linux/amd64/v3", "linux/amd64", false},
		{"linux/arm64", "linux/arm64/v8.2", true},
		{"linux/arm64/v9", "linux/arm64", false},
		{"linux/arm64", "linux/amd64", false},
		{"windows/amd64", "linux/amd64", false},
		{"linux/s390x", "linux/s390x", true},
	} {
		img, _ := platform.Parse(tc.img)
		cpu, _ := platform.Parse(tc.cpu)
		if got := platform.RunsOn(img, cpu); got != tc.want {
			t.Errorf("RunsOn(%s, %s) = %v, want %v", tc.img, tc.cpu, got, tc.want)
		}
	}
}

func TestAliasAndArch(t *testing.T) {
	t.Parallel()
	if a, v, ok := platform.Alias("arm64v8"); !ok || a != "arm64" || v != "v8" {
		t.Errorf("Alias(arm64v8) = %s %s %v", a, v, ok)
	}
	if _, _, ok := platform.Alias("arm64"); ok {
		t.Error("arm64 is not an alias")
	}
	if a, v := platform.NormalizeArch("aarch64", ""); a != "arm64" || v != "" {
		t.Errorf("NormalizeArch(aarch64) = %s %s", a, v)
	}
	if a, v := platform.NormalizeArch("armhf", ""); a != "arm" || v != "v7" {
		t.Errorf("NormalizeArch(armhf) = %s %s", a, v)
	}
}

// FuzzParse: never panics; accepted platforms are known, normalized and
// round-trip.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"linux/amd64", "linux/arm/v7", "windows/amd64:10.0.1", "linux/arm64/v9.5", "a/b/c/d", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := platform.Parse(s)
		if err != nil {
			return
		}
		if !platform.Known(p.OS, p.Architecture) || !platform.ValidVariant(p.Architecture, p.Variant) || platform.Normalize(p).Variant != p.Variant {
			t.Fatalf("Parse(%q) = %s: not known or not normalized", s, platform.String(p))
		}
		again, err := platform.Parse(platform.String(p))
		if err != nil || platform.String(again) != platform.String(p) {
			t.Fatalf("Parse(%q) = %s does not round-trip: %v", s, platform.String(p), err)
		}
	})
}

// FuzzValidVariant: ValidVariant, written out for speed, agrees with the
// regular expressions of the variants on every input.
func FuzzValidVariant(f *testing.F) {
	oracle := map[string]*regexp.Regexp{
		"arm":   regexp.MustCompile(`^v[5-8]$`),
		"arm64": regexp.MustCompile(`^(v8(\.[0-9])?|v9(\.[0-5])?)$`),
		"amd64": regexp.MustCompile(`^v[1-4]$`),
	}
	for _, v := range []string{"v5", "v8", "v9", "v8.0", "v8.9", "v9.5", "v9.6", "v8.", "v8.10", "v1", "v4", "v0", "8", "v", "v7x"} {
		for _, a := range []string{"arm", "arm64", "amd64", "386"} {
			f.Add(a, v)
		}
	}
	f.Fuzz(func(t *testing.T, arch, variant string) {
		want := variant == ""
		if re, ok := oracle[arch]; ok && variant != "" {
			want = re.MatchString(variant)
		}
		if got := platform.ValidVariant(arch, variant); got != want {
			t.Fatalf("ValidVariant(%q, %q) = %v, want %v", arch, variant, got, want)
		}
	})
}
