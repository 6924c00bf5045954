package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/manifold-proxy/manifold/internal/regtest"
)

func TestBuildCommand(t *testing.T) {
	host := regtest.NewRegistry(t).Host
	cache := t.TempDir()
	const pkg = "../../crossbuild/testdata/hello"
	common := []string{"build", "--repo", host + "/cli", "--tag", "v1", "--platform", "linux/amd64,linux/arm/v7",
		"--add", "../../crossbuild/testdata/hello/static:/srv/static", "--cache-dir", cache}

	t.Run("dry run", func(t *testing.T) {
		out, _, err := execRoot(t, append(common, "--dry-run", pkg)...)
		if err != nil {
			t.Fatal(err)
		}
		if !hasRow(out, "linux/arm/v7 CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 scratch v1-linux-arm-v7") {
			t.Errorf("no plan row for linux/arm/v7:\n%s", out)
		}
		for _, want := range []string{
			"dry run: nothing pushed to " + host + "/cli",
			`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[`,
			"not pushed",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if _, err := remote.List(regtest.Ref(t, host+"/cli").Context()); err == nil {
			t.Error("a dry run pushed tags")
		}
	})

	var dryIndex []byte
	t.Run("dry run index is the pushed index", func(t *testing.T) {
		out, _, err := execRoot(t, append(common, "--dry-run", pkg)...)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, `{"schemaVersion":2`) {
				dryIndex = []byte(line)
			}
		}
	})

	meta := filepath.Join(t.TempDir(), "meta.json")
	t.Run("push with index", func(t *testing.T) {
		out, _, err := execRoot(t, append(common, "--index", "--metadata-file", meta, pkg)...)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"linux/amd64: compiling…", "linux/amd64: pushed sha256:", "PLATFORM", "v1-linux-arm-v7"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		b, err := os.ReadFile(meta)
		if err != nil {
			t.Fatal(err)
		}
		var m metadata
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if len(m.Images) != 2 || m.Images[0].Platform != "linux/amd64" || m.Images[1].Platform != "linux/arm/v7" ||
			m.Images[1].Tags[0] != "v1-linux-arm-v7" || m.Images[0].Size == 0 || !m.Index.Pushed {
			t.Errorf("metadata:\n%s", b)
		}
		d, err := remote.Get(regtest.Ref(t, host+"/cli:v1"))
		if err != nil {
			t.Fatal(err)
		}
		if d.Digest.String() != m.Index.Digest {
			t.Errorf("registry v1 is %s, metadata says %s", d.Digest, m.Index.Digest)
		}
		if !bytes.Equal(d.Manifest, dryIndex) {
			t.Errorf("pushed index\n%s\ndry-run index\n%s", d.Manifest, dryIndex)
		}
		for _, im := range m.Images {
			d, err := remote.Head(regtest.Ref(t, host+"/cli:"+im.Tags[0]))
			if err != nil {
				t.Fatal(err)
			}
			if d.Digest.String() != im.Digest {
				t.Errorf("%s is %s, metadata says %s", im.Tags[0], d.Digest, im.Digest)
			}
		}
	})

	t.Run("rebuild is unchanged", func(t *testing.T) {
		out, _, err := execRoot(t, append(common, "--index", pkg)...)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, "pushed") || !strings.Contains(out, "unchanged") {
			t.Errorf("rebuild output:\n%s", out)
		}
	})

	t.Run("compile error", func(t *testing.T) {
		_, stderr, err := execRoot(t, "build", "--repo", host+"/broken", "--tag", "v1", "--platform", "linux/amd64,linux/arm64",
			"--cache-dir", cache, "../../crossbuild/testdata/broken")
		if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "for linux/arm64/v8: exit status 1") {
			t.Errorf("err = %v", err)
		}
		if !strings.Contains(stderr, `cannot use "not a number"`) {
			t.Errorf("stderr lacks Go's error:\n%s", stderr)
		}
		if _, err := remote.List(regtest.Ref(t, host+"/broken").Context()); err == nil {
			t.Error("a failed build pushed tags")
		}
	})

	t.Run("refusals", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"build", "--repo", host + "/x", "--platform", "darwin/arm64"}, "platform darwin/arm64: no container runtime runs darwin images"},
			{[]string{"build", "--repo", host + "/x", "--platform", "windows/amd64"}, "platform windows/amd64: needs a Windows base image"},
			{[]string{"build", "--platform", "linux/amd64"}, `required flag(s) "repo" not set`},
			{[]string{"build", "--repo", host + "/x", "a", "b"}, "accepts at most 1 arg(s)"},
		} {
			_, _, err := execRoot(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%q: err = %v, want one line with %q", tc.args, err, tc.want)
			}
		}
	})
}

// hasRow reports whether a line of out has exactly the fields of row.
func hasRow(out, row string) bool {
	want := strings.Join(strings.Fields(row), " ")
	for _, line := range strings.Split(out, "\n") {
		if strings.Join(strings.Fields(line), " ") == want {
			return true
		}
	}
	return false
}
