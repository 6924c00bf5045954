package build_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
// opt-in binary cache, which also spares relinking). Iterations alternate
// the order of the tools. Run with
//
//	go test -run '^$' -bench VersusKo -benchtime 3x ./build/
//
// Skipped when ko is not on PATH or in $(go env GOPATH)/bin.
func BenchmarkVersusKo(b *testing.B) {
	ko := findKo()
	if ko == "" {
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

	const pkg = "./build/testdata/hello"
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
		return timeCmd(b, modRoot, kenv, ko, append(args, pkg)...)
	}
	proxyRun := func(repo, cache string) time.Duration {
		return timeCmd(b, modRoot, env, proxyBin, "build", "--repo", host+"/"+repo, "--tag", "latest", "--index",
			"--base", base, "--platform", strings.Join(benchPlatforms, ","), "--cache-dir", cache, pkg)
	}

	// Warm Go's build cache for every platform, through both tools.
	koRun("bench/warm-ko", false, "")
	proxyRun("bench/warm-proxy", filepath.Join(tmp, "warm"))

	type phase struct{ first, rebuild time.Duration }
	var ko1, ko2, ko3, pb phase
	for i := 0; i < b.N; i++ {
		var k1, k2, k3, p phase
		runKo := func() {
			k1.first = koRun(fmt.Sprintf("bench/ko-sbom-%d", i), true, "")
			k1.rebuild = koRun(fmt.Sprintf("bench/ko-sbom-%d", i), true, "")
			k2.first = koRun(fmt.Sprintf("bench/ko-%d", i), false, "")
			k2.rebuild = koRun(fmt.Sprintf("bench/ko-%d", i), false, "")
			kocache := filepath.Join(tmp, fmt.Sprintf("kocache-%d", i))
			k3.first = koRun(fmt.Sprintf("bench/ko-cache-%d", i), false, kocache)
			k3.rebuild = koRun(fmt.Sprintf("bench/ko-cache-%d", i), false, kocache)
		}
		runProxy := func() {
			cache := filepath.Join(tmp, fmt.Sprintf("cache-%d", i))
			p.first = proxyRun(fmt.Sprintf("bench/proxy-%d", i), cache)
			p.rebuild = proxyRun(fmt.Sprintf("bench/proxy-%d", i), cache)
		}
		if i%2 == 0 {
			runKo()
			runProxy()
		} else {
			runProxy()
			runKo()
		}
		b.Logf("run %d: first build: proxy build %v, ko --sbom=none %v, ko %v, ko --sbom=none KOCACHE %v",
			i, p.first.Round(time.Millisecond), k2.first.Round(time.Millisecond), k1.first.Round(time.Millisecond), k3.first.Round(time.Millisecond))
		b.Logf("run %d: rebuild:     proxy build %v, ko --sbom=none %v, ko %v, ko --sbom=none KOCACHE %v",
			i, p.rebuild.Round(time.Millisecond), k2.rebuild.Round(time.Millisecond), k1.rebuild.Round(time.Millisecond), k3.rebuild.Round(time.Millisecond))
		ko1.first += k1.first
		ko1.rebuild += k1.rebuild
		ko2.first += k2.first
		ko2.rebuild += k2.rebuild
		ko3.first += k3.first
		ko3.rebuild += k3.rebuild
		pb.first += p.first
		pb.rebuild += p.rebuild
	}
	n := float64(b.N)
	b.ReportMetric(pb.first.Seconds()/n, "proxy-first-s")
	b.ReportMetric(pb.rebuild.Seconds()/n, "proxy-rebuild-s")
	b.ReportMetric(ko2.first.Seconds()/n, "ko-first-s")
	b.ReportMetric(ko2.rebuild.Seconds()/n, "ko-rebuild-s")
	b.ReportMetric(ko2.first.Seconds()/pb.first.Seconds(), "ko/proxy-first")
	b.ReportMetric(ko2.rebuild.Seconds()/pb.rebuild.Seconds(), "ko/proxy-rebuild")
	b.ReportMetric(ko1.first.Seconds()/pb.first.Seconds(), "ko-sbom/proxy-first")
	b.ReportMetric(ko1.rebuild.Seconds()/pb.rebuild.Seconds(), "ko-sbom/proxy-rebuild")
	b.ReportMetric(ko3.first.Seconds()/pb.first.Seconds(), "ko-kocache/proxy-first")
	b.ReportMetric(ko3.rebuild.Seconds()/pb.rebuild.Seconds(), "ko-kocache/proxy-rebuild")
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
