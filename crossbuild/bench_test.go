package crossbuild_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// benchPlatforms are the 8 linux platforms of the comparison with ko.
var benchPlatforms = []string{
	"linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6", "linux/386", "linux/ppc64le", "linux/s390x", "linux/riscv64",
}

// BenchmarkVersusKo times `proxy build` and ko (github.com/google/ko,
// which also builds Go images without a daemon) on the same program, the
// same 8 platforms and the same registry, in the same run:
//
//   - first build: a new repository and, for proxy build, an empty
//     --cache-dir; the Go build cache is warmed for both beforehand, so
//     both only link, pack and push;
//   - rebuild: the same command again with no source change.
//
// Both use the same base (a local index of 8 empty images, since ko needs
// a base and there is no network), push an index (ko always does; proxy
// build with --index) and build with -trimpath. ko runs twice: with its
// default SPDX SBOM, with --sbom=none (the like-for-like comparison:
// proxy build writes no SBOM), and with --sbom=none and KOCACHE set (ko's
// opt-in binary cache, which also spares relinking). Run with
//
//	go test -run '^$' -bench VersusKo -benchtime 5x ./crossbuild/
//
// Skipped when ko is not on PATH or in $(go env GOPATH)/bin.
func BenchmarkVersusKo(b *testing.B) {
	if testing.Short() {
		b.Skip("a minute of builds: not part of the -short smoke run")
	}
	koBin := findKo()
	if koBin == "" {
		b.Skip("ko not found; go install github.com/google/ko@v0.19.1")
	}
	modRoot, err := filepath.Abs("..")
	if err != nil {
		b.Fatal(err)
	}
	tmp := b.TempDir()
	proxyBin := filepath.Join(tmp, "proxy")
	if out, err := exec.Command("go", "build", "-o", proxyBin, "../cmd/proxy").CombinedOutput(); err != nil {
		b.Fatalf("building proxy: %v\n%s", err, out)
	}
	host := registryHost()
	base := host + "/bench/base:empty"
	pushEmptyBase(b, base)

	const pkg = "./crossbuild/testdata/hello"
	env := append(os.Environ(), "KO_DEFAULTBASEIMAGE="+base)
	koRun := func(repo string, sbom bool, kocache string) time.Duration {
		args := []string{"build", "--bare", "--insecure-registry", "--platform", strings.Join(benchPlatforms, ","), "--tags", "latest"}
		if !sbom {
			args = append(args, "--sbom", "none")
		}
		kenv := append(env, "KO_DOCKER_REPO="+host+"/"+repo)
		if kocache != "" {
			kenv = append(kenv, "KOCACHE="+kocache)
		}
		return timeCmd(b, modRoot, kenv, koBin, append(args, pkg)...)
	}
	proxyRun := func(repo, cache string) time.Duration {
		return timeCmd(b, modRoot, env, proxyBin, "build", "--repo", host+"/"+repo, "--tag", "latest", "--index",
			"--base", base, "--platform", strings.Join(benchPlatforms, ","), "--cache-dir", cache, pkg)
	}

	// Warm Go's build cache for every platform, through both tools.
	koRun("bench/warm-ko", false, "")
	proxyRun("bench/warm-proxy", filepath.Join(tmp, "warm"))

	// Each iteration interleaves the tools pairwise (first builds, then
	// rebuilds), alternating which goes first, so that load from other
	// processes hits both alike; the ratios reported are medians of the
	// per-iteration ratios.
	type times struct{ first, rebuild time.Duration }
	var pb, ko, koSBOM, koCache []times
	for i := 0; i < b.N; i++ {
		var p, k, ks, kc times
		koRepo, proxyRepo := fmt.Sprintf("bench/ko-%d", i), fmt.Sprintf("bench/proxy-%d", i)
		cache := filepath.Join(tmp, fmt.Sprintf("cache-%d", i))
		pair := func(kf, pf func()) {
			if i%2 == 0 {
				kf()
				pf()
			} else {
				pf()
				kf()
			}
		}
		pair(func() { k.first = koRun(koRepo, false, "") }, func() { p.first = proxyRun(proxyRepo, cache) })
		pair(func() { k.rebuild = koRun(koRepo, false, "") }, func() { p.rebuild = proxyRun(proxyRepo, cache) })
		ks.first = koRun(fmt.Sprintf("bench/ko-sbom-%d", i), true, "")
		ks.rebuild = koRun(fmt.Sprintf("bench/ko-sbom-%d", i), true, "")
		kocache := filepath.Join(tmp, fmt.Sprintf("kocache-%d", i))
		kc.first = koRun(fmt.Sprintf("bench/ko-cache-%d", i), false, kocache)
		kc.rebuild = koRun(fmt.Sprintf("bench/ko-cache-%d", i), false, kocache)
		ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
		b.Logf("run %d: first build: proxy build %v, ko --sbom=none %v, ko %v, ko --sbom=none KOCACHE %v",
			i, ms(p.first), ms(k.first), ms(ks.first), ms(kc.first))
		b.Logf("run %d: rebuild:     proxy build %v, ko --sbom=none %v, ko %v, ko --sbom=none KOCACHE %v",
			i, ms(p.rebuild), ms(k.rebuild), ms(ks.rebuild), ms(kc.rebuild))
		pb, ko, koSBOM, koCache = append(pb, p), append(ko, k), append(koSBOM, ks), append(koCache, kc)
	}
	median := func(xs []float64) float64 {
		slices.Sort(xs)
		n := len(xs)
		if n%2 == 1 {
			return xs[n/2]
		}
		return (xs[n/2-1] + xs[n/2]) / 2
	}
	seconds := func(ts []times, first bool) float64 {
		var xs []float64
		for _, t := range ts {
			if first {
				xs = append(xs, t.first.Seconds())
			} else {
				xs = append(xs, t.rebuild.Seconds())
			}
		}
		return median(xs)
	}
	ratio := func(ts []times, first bool) float64 {
		var xs []float64
		for i, t := range ts {
			if first {
				xs = append(xs, t.first.Seconds()/pb[i].first.Seconds())
			} else {
				xs = append(xs, t.rebuild.Seconds()/pb[i].rebuild.Seconds())
			}
		}
		return median(xs)
	}
	b.ReportMetric(seconds(pb, true), "proxy-first-s")
	b.ReportMetric(seconds(pb, false), "proxy-rebuild-s")
	b.ReportMetric(seconds(ko, true), "ko-first-s")
	b.ReportMetric(seconds(ko, false), "ko-rebuild-s")
	b.ReportMetric(ratio(ko, true), "ko/proxy-first")
	b.ReportMetric(ratio(ko, false), "ko/proxy-rebuild")
	b.ReportMetric(ratio(koSBOM, true), "ko-sbom/proxy-first")
	b.ReportMetric(ratio(koSBOM, false), "ko-sbom/proxy-rebuild")
	b.ReportMetric(ratio(koCache, true), "ko-kocache/proxy-first")
	b.ReportMetric(ratio(koCache, false), "ko-kocache/proxy-rebuild")
}

func findKo() string {
	if p, err := exec.LookPath("ko"); err == nil {
		return p
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err != nil {
		return ""
	}
	for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
		p := filepath.Join(dir, "bin", "ko")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

func timeCmd(b *testing.B, dir string, env []string, bin string, args ...string) time.Duration {
	b.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Env = dir, env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out.String())
	}
	return d
}

// pushEmptyBase pushes an index of empty images, one per bench platform:
// ko needs a multi-platform base, and both tools get the same one.
func pushEmptyBase(b *testing.B, ref string) {
	b.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, s := range benchPlatforms {
		parts := strings.Split(s, "/")
		p := v1.Platform{OS: parts[0], Architecture: parts[1]}
		if len(parts) == 3 {
			p.Variant = parts[2]
		}
		img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
		cf, err := img.ConfigFile()
		if err != nil {
			b.Fatal(err)
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			b.Fatal(err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		b.Fatal(err)
	}
	if err := remote.WriteIndex(tag, idx, remote.WithContext(context.Background())); err != nil {
		b.Fatal(err)
	}
}
