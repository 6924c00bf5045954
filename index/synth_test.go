package index_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/platform"
)

var update = flag.Bool("update", false, "rewrite golden files (a changed golden file is a breaking change: every pinned digest moves)")

func hash(s string) v1.Hash {
	sum := sha256.Sum256([]byte(s))
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// image is a plain single-platform member: its config says os/arch/variant.
func image(tag string, mt types.MediaType, os, arch, variant string) index.Member {
	s, ok := index.Grammar{}.Parse(tag)
	if !ok {
		panic("not a member tag: " + tag)
	}
	cfgType := types.DockerConfigJSON
	if mt == types.OCIManifestSchema1 {
		cfgType = types.OCIConfigJSON
	}
	return index.Member{Tag: tag, Suffix: s, Images: []index.Image{{
		Descriptor: v1.Descriptor{MediaType: mt, Digest: hash(tag), Size: int64(400 + len(tag))},
		Config:     &index.Config{MediaType: cfgType, OS: os, Architecture: arch, Variant: variant},
	}}}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name+".json")
	if *update {
		if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(bytes.TrimSuffix(want, []byte("\n")), got) {
		t.Errorf("synthesized bytes changed (a breaking change: every pinned digest moves)\n got: %s\nwant: %s", got, want)
	}
}

func synth(t *testing.T, base string, members ...index.Member) *index.Result {
	t.Helper()
	r, err := index.Synthesize(base, members)
	if err != nil {
		t.Fatalf("Synthesize: %v", err)
	}
	var check v1.IndexManifest
	if err := json.Unmarshal(r.Bytes, &check); err != nil {
		t.Fatalf("output is not an index: %v", err)
	}
	if check.MediaType != r.MediaType || len(check.Manifests) != len(r.Entries) {
		t.Fatalf("output disagrees with result: %s", r.Bytes)
	}
	sum := sha256.Sum256(r.Bytes)
	if r.Digest.Hex != hex.EncodeToString(sum[:]) {
		t.Fatalf("digest %s is not the sha256 of the bytes", r.Digest)
	}
	return r
}

func platforms(r *index.Result) string {
	var s []string
	for _, e := range r.Entries {
		s = append(s, platform.String(*e.Descriptor.Platform)+"="+e.Tag)
	}
	return strings.Join(s, " ")
}

func TestSynthesizeDockerList(t *testing.T) {
	t.Parallel()
	r := synth(t, "1.4",
		image("1.4-linux-amd64", types.DockerManifestSchema2, "linux", "amd64", ""),
		image("1.4-linux-arm64", types.DockerManifestSchema2, "linux", "arm64", "v8"),
		image("1.4-linux-arm-v7", types.DockerManifestSchema2, "linux", "arm", ""),
		image("1.4-linux-arm-v6", types.DockerManifestSchema2, "linux", "arm", "v6"),
		image("1.4-linux-386", types.DockerManifestSchema2, "linux", "386", ""),
	)
	if r.MediaType != types.DockerManifestList {
		t.Errorf("media type %s, want Docker list (all children are Docker)", r.MediaType)
	}
	want := "linux/386=1.4-linux-386 linux/amd64=1.4-linux-amd64 linux/arm/v7=1.4-linux-arm-v7 linux/arm/v6=1.4-linux-arm-v6 linux/arm64/v8=1.4-linux-arm64"
	if got := platforms(r); got != want {
		t.Errorf("entries:\n got %s\nwant %s", got, want)
	}
	golden(t, "docker-list", r.Bytes)
}

func TestSynthesizeOCIWithAttestations(t *testing.T) {
	t.Parallel()
	// A buildx member: an index with the image and its attestation manifest,
	// plus an image for another platform that must not leak in.
	img := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: hash("img-arm64"), Size: 500,
		Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}
	other := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: hash("img-s390x"), Size: 501,
		Platform: &v1.Platform{OS: "linux", Architecture: "s390x"}}
	att := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: hash("att-arm64"), Size: 600,
		Platform:    &v1.Platform{OS: "unknown", Architecture: "unknown"},
		Annotations: map[string]string{index.AnnotationReferenceType: "attestation-manifest", index.AnnotationReferenceDigest: img.Digest.String()}}
	attOther := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: hash("att-s390x"), Size: 601,
		Platform:    &v1.Platform{OS: "unknown", Architecture: "unknown"},
		Annotations: map[string]string{index.AnnotationReferenceType: "attestation-manifest", index.AnnotationReferenceDigest: other.Digest.String()}}
	idx := &v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{img, att, other, attOther}}
	s, _ := index.Grammar{}.Parse("2.0-linux-arm64")
	images, atts := index.Flatten(idx, s)
	if len(images) != 1 || len(atts) != 1 {
		t.Fatalf("Flatten = %d images, %d attestations; want 1, 1", len(images), len(atts))
	}
	member := index.Member{Tag: s.Tag, Suffix: s, Attestations: atts}
	for _, d := range images {
		member.Images = append(member.Images, index.Image{Descriptor: d, Config: &index.Config{MediaType: types.OCIConfigJSON, OS: "linux", Architecture: "arm64"}})
	}
	r := synth(t, "2.0", member, image("2.0-linux-amd64", types.DockerManifestSchema2, "linux", "amd64", ""))
	if r.MediaType != types.OCIImageIndex {
		t.Errorf("media type %s, want OCI index (mixed children)", r.MediaType)
	}
	want := "linux/amd64=2.0-linux-amd64 linux/arm64/v8=2.0-linux-arm64 unknown/unknown=2.0-linux-arm64"
	if got := platforms(r); got != want {
		t.Errorf("entries:\n got %s\nwant %s", got, want)
	}
	for _, e := range r.Entries {
		if e.Descriptor.MediaType == types.OCIImageIndex || e.Descriptor.MediaType == types.DockerManifestList {
			t.Errorf("nested index %s", e.Descriptor.Digest)
		}
	}
	golden(t, "oci-attestation", r.Bytes)
}

func TestSynthesizeWindowsOSVersions(t *testing.T) {
	t.Parallel()
	ltsc2019 := v1.Descriptor{MediaType: types.DockerManifestSchema2, Digest: hash("win-2019"), Size: 700, Platform: &v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763.6659"}}
	ltsc2022 := v1.Descriptor{MediaType: types.DockerManifestSchema2, Digest: hash("win-2022"), Size: 701, Platform: &v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.20348.2966"}}
	idx := &v1.IndexManifest{SchemaVersion: 2, MediaType: types.DockerManifestList, Manifests: []v1.Descriptor{ltsc2022, ltsc2019}}
	s, _ := index.Grammar{}.Parse("3.1-windows-amd64")
	images, _ := index.Flatten(idx, s)
	m := index.Member{Tag: s.Tag, Suffix: s}
	for _, d := range images {
		m.Images = append(m.Images, index.Image{Descriptor: d, Config: &index.Config{MediaType: types.DockerConfigJSON, OS: "windows", Architecture: "amd64", OSVersion: d.Platform.OSVersion, OSFeatures: []string{"win32k"}}})
	}
	r := synth(t, "3.1", m, image("3.1-linux-amd64", types.DockerManifestSchema2, "linux", "amd64", ""))
	want := "linux/amd64=3.1-linux-amd64 windows/amd64:10.0.17763.6659=3.1-windows-amd64 windows/amd64:10.0.20348.2966=3.1-windows-amd64"
	if got := platforms(r); got != want {
		t.Errorf("entries:\n got %s\nwant %s", got, want)
	}
	if len(r.Duplicates) != 0 {
		t.Errorf("different os.version are not duplicates: %v", r.Duplicates)
	}
	golden(t, "windows", r.Bytes)
}

func TestSynthesizeExclusions(t *testing.T) {
	t.Parallel()
	mislabeled := image("1.0-linux-arm64", types.DockerManifestSchema2, "linux", "amd64", "")
	wrongVariant := image("1.0-linux-arm-v6", types.DockerManifestSchema2, "linux", "arm", "v7")
	broken := image("1.0-linux-s390x", types.DockerManifestSchema2, "linux", "s390x", "")
	broken.Images[0].Config = nil
	broken.Images[0].Problem = "image config unreadable: malformed image config"
	tooBig := image("1.0-linux-ppc64le", types.DockerManifestSchema2, "linux", "ppc64le", "")
	tooBig.Problem = "manifest is 5242880 bytes, over the 4194304-byte limit"
	artifact := image("1.0-linux-riscv64", types.OCIManifestSchema1, "linux", "riscv64", "")
	artifact.Images[0].Config.MediaType = "application/vnd.cncf.helm.config.v1+json"
	good := image("1.0-linux-amd64", types.DockerManifestSchema2, "linux", "amd64", "")

	r := synth(t, "1.0", mislabeled, wrongVariant, broken, tooBig, artifact, good)
	if got := platforms(r); got != "linux/amd64=1.0-linux-amd64" {
		t.Errorf("entries: %s", got)
	}
	var reasons []string
	for _, x := range r.Excluded {
		reasons = append(reasons, x.String())
	}
	want := []string{
		"1.0-linux-arm-v6: config variant v7 contradicts tag variant v6",
		"1.0-linux-arm64: config says linux/amd64, tag says linux/arm64",
		"1.0-linux-ppc64le: manifest is 5242880 bytes, over the 4194304-byte limit",
		`1.0-linux-riscv64: config media type "application/vnd.cncf.helm.config.v1+json" is not an image config`,
		"1.0-linux-s390x: image config unreadable: malformed image config",
	}
	if strings.Join(reasons, "\n") != strings.Join(want, "\n") {
		t.Errorf("exclusions:\n got %q\nwant %q", reasons, want)
	}

	_, err := index.Synthesize("1.0", []index.Member{mislabeled, tooBig})
	var empty *index.EmptyGroupError
	if !errors.As(err, &empty) || len(empty.Excluded) != 2 || !strings.Contains(err.Error(), "1.0-linux-arm64: config says linux/amd64") {
		t.Errorf("all excluded: err = %v, want EmptyGroupError naming both tags", err)
	}
}

func TestSynthesizeDuplicates(t *testing.T) {
	t.Parallel()
	g := index.Grammar{Aliases: true}
	mk := func(tag, arch, variant string) index.Member {
		s, ok := g.Parse(tag)
		if !ok {
			t.Fatalf("%s does not parse", tag)
		}
		m := image(tag[:len(s.Base)]+"-linux-amd64", types.DockerManifestSchema2, "linux", arch, variant)
		m.Tag, m.Suffix = tag, s
		m.Images[0].Descriptor.Digest = hash(tag)
		return m
	}
	r := synth(t, "5",
		mk("5-linux-arm64-v8", "arm64", "v8"),
		mk("5-linux-arm64", "arm64", ""),
		mk("5-linux-aarch64", "arm64", ""),
		mk("5-linux-arm", "arm", ""),
		mk("5-linux-arm-v7", "arm", "v7"),
		mk("5-linux-armhf", "arm", ""),
	)
	if got, want := platforms(r), "linux/arm/v7=5-linux-arm-v7 linux/arm64/v8=5-linux-arm64"; got != want {
		t.Errorf("entries:\n got %s\nwant %s", got, want)
	}
	want := []string{
		"5-linux-aarch64: duplicate platform linux/arm64/v8, 5-linux-arm64 wins",
		"5-linux-arm64-v8: duplicate platform linux/arm64/v8, 5-linux-arm64 wins",
		"5-linux-arm: duplicate platform linux/arm/v7, 5-linux-arm-v7 wins",
		"5-linux-armhf: duplicate platform linux/arm/v7, 5-linux-arm-v7 wins",
	}
	var got []string
	for _, d := range r.Duplicates {
		got = append(got, d.String())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("duplicates:\n got %q\nwant %q", got, want)
	}
}

func TestSynthesizeMergeBare(t *testing.T) {
	t.Parallel()
	bare := func(digest, arch string) index.Member {
		return index.Member{Tag: "1.0", Images: []index.Image{{
			Descriptor: v1.Descriptor{MediaType: types.DockerManifestSchema2, Digest: hash(digest), Size: 321},
			Config:     &index.Config{MediaType: types.DockerConfigJSON, OS: "linux", Architecture: arch},
		}}}
	}
	// A legacy bare amd64 image plus an arm64 member: the bare joins.
	r := synth(t, "1.0", bare("legacy", "amd64"), image("1.0-linux-arm64", types.DockerManifestSchema2, "linux", "arm64", ""))
	if got, want := platforms(r), "linux/amd64=1.0 linux/arm64/v8=1.0-linux-arm64"; got != want {
		t.Errorf("merge: %s, want %s", got, want)
	}
	// A suffixed amd64 tag beats the bare amd64 image.
	r = synth(t, "1.0", bare("legacy", "amd64"), image("1.0-linux-amd64", types.DockerManifestSchema2, "linux", "amd64", ""))
	if got, want := platforms(r), "linux/amd64=1.0-linux-amd64"; got != want || len(r.Duplicates) != 1 {
		t.Errorf("merge: %s (duplicates %v), want %s and one duplicate", got, r.Duplicates, want)
	}
}

// TestDeterminism: the bytes depend on the members' content only, never on
// the order they are given in.
func TestDeterminism(t *testing.T) {
	t.Parallel()
	var members []index.Member
	for _, tag := range []string{"9-linux-amd64", "9-linux-arm64", "9-linux-arm-v7", "9-linux-arm-v6", "9-linux-386", "9-linux-ppc64le", "9-linux-s390x", "9-linux-riscv64", "9-linux-amd64-v3"} {
		s, _ := index.Grammar{}.Parse(tag)
		m := image(tag, types.OCIManifestSchema1, "linux", s.Platform.Architecture, s.Platform.Variant)
		members = append(members, m)
	}
	first := synth(t, "9", members...)
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 200; i++ {
		shuffled := append([]index.Member(nil), members...)
		rng.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		r := synth(t, "9", shuffled...)
		if !bytes.Equal(r.Bytes, first.Bytes) {
			t.Fatalf("shuffle %d changed the bytes:\n%s\n%s", i, r.Bytes, first.Bytes)
		}
	}
	golden(t, "nine-platforms", first.Bytes)
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	c, err := index.ParseConfig(types.OCIConfigJSON, []byte(`{"architecture":"arm","os":"linux","variant":"v6","os.features":["x"],"rootfs":{}}`))
	if err != nil || c.Architecture != "arm" || c.Variant != "v6" || len(c.OSFeatures) != 1 {
		t.Errorf("ParseConfig = %+v, %v", c, err)
	}
	for _, bad := range []string{`{`, `{"os":"linux"}`, `[]`, ``} {
		if _, err := index.ParseConfig(types.OCIConfigJSON, []byte(bad)); err == nil {
			t.Errorf("ParseConfig(%q) accepted", bad)
		}
	}
}

// TestFlattenVariants: a member index contributes the variants its tag
// allows, and the tag that names a platform exactly wins it.
func TestFlattenVariants(t *testing.T) {
	t.Parallel()
	v8 := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: hash("arm64-v8"), Size: 10, Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}
	v9 := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: hash("arm64-v9"), Size: 11, Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v9"}}
	idx := &v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{v8, v9}}
	plain, _ := index.Grammar{}.Parse("1.0-linux-arm64")
	exact, _ := index.Grammar{}.Parse("1.0-linux-arm64-v8.0")
	if imgs, _ := index.Flatten(idx, plain); len(imgs) != 2 {
		t.Errorf("-linux-arm64 takes every arm64 variant, got %d", len(imgs))
	}
	if imgs, _ := index.Flatten(idx, exact); len(imgs) != 1 || imgs[0].Digest != v8.Digest {
		t.Errorf("-linux-arm64-v8.0 takes only v8: %v", imgs)
	}
	member := index.Member{Tag: plain.Tag, Suffix: plain}
	for _, d := range []v1.Descriptor{v8, v9} {
		member.Images = append(member.Images, index.Image{Descriptor: d, Config: &index.Config{MediaType: types.OCIConfigJSON, OS: "linux", Architecture: "arm64", Variant: d.Platform.Variant}})
	}
	other := image("1.0-linux-arm64-v9", types.OCIManifestSchema1, "linux", "arm64", "v9")
	r := synth(t, "1.0", member, other)
	if got, want := platforms(r), "linux/arm64/v8=1.0-linux-arm64 linux/arm64/v9=1.0-linux-arm64-v9"; got != want {
		t.Errorf("entries:\n got %s\nwant %s", got, want)
	}
}
