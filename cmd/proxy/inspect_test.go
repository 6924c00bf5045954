package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/manifold-proxy/manifold/internal/migratetest"
	"github.com/manifold-proxy/manifold/internal/regtest"
)

// execRoot runs the real root command with args, as main does.
func execRoot(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	err = root.ExecuteContext(context.Background())
	if err != nil && strings.ContainsAny(err.Error(), "\r\n") {
		t.Errorf("error is not one line: %q", err)
	}
	return out.String(), errb.String(), err
}

// rowOf is the table row that starts with first.
func rowOf(t *testing.T, out, first string) []string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == first {
			return f
		}
	}
	t.Fatalf("no row %q in\n%s", first, out)
	return nil
}

func short(d string) string { return strings.TrimPrefix(d, "sha256:")[:12] }

func TestInspectCommand(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	l := migratetest.SeedLegacy(t, reg, "team/app")
	out, _, err := execRoot(t, "inspect", reg.Host+"/team/app")
	if err != nil {
		t.Fatal(err)
	}
	head := rowOf(t, out, "BASE")
	if want := "BASE BARE PROXY SERVES MIGRATE linux/amd64 linux/arm/v7 linux/arm64/v8"; strings.Join(head, " ") != want {
		t.Errorf("header %q, want %q", strings.Join(head, " "), want)
	}
	px := migratetest.StartProxy(t, reg, nil)
	served := func(base string) string {
		d, _, _ := px.Get(t, "team/app", base)
		return short(d)
	}
	for _, c := range []struct {
		base string
		want []string
	}{
		{"1.0-rc1", []string{"1.0-rc1", "absent", "index", served("1.0-rc1"), "create",
			short(l.Digests["1.0-rc1-linux-amd64"]), short(l.Digests["1.0-rc1-linux-arm-v7"]), short(l.Digests["1.0-rc1-linux-arm64"])}},
		{"legacy", []string{"legacy", "would", "change", "index", served("legacy"), "update",
			short(l.Digests["legacy"]), "-", short(l.Digests["legacy-linux-arm64"])}},
		{"2.0", []string{"2.0", "absent", "index", served("2.0"), "create",
			short(l.Digests["2.0-linux-amd64"]), "-", short(l.Digests["2.0-linux-arm64"]) + "!"}},
		{"3.0", []string{"3.0", "absent", "index", served("3.0"), "create",
			short(l.Digests["3.0-linux-amd64"]) + "*", "-", short(l.Digests["3.0-linux-arm64"])}},
		{"solo", []string{"solo", "absent", "index", served("solo"), "create", short(l.Digests["solo-linux-amd64"]), "-", "-"}},
	} {
		if got := rowOf(t, out, c.base); strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("row %s:\n got %q\nwant %q", c.base, got, c.want)
		}
	}
	for _, want := range []string{
		"! left out of the index",
		"* member is an index (flattened)",
		"2.0: 2.0-linux-arm64 left out: config says linux/amd64, tag says linux/arm64",
		"3.0: 3.0-linux-amd64 is an index, flattened to 1 image and 1 attestation",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
}

func TestInspectCommandJSON(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	l := migratetest.SeedLegacy(t, reg, "team/app")
	out, _, err := execRoot(t, "inspect", reg.Host+"/team/app:legacy", "--json", "--expect", "linux/amd64,linux/arm64,linux/riscv64")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Repository string `json:"repository"`
		Groups     []struct {
			Base  string `json:"base"`
			Bare  string `json:"bare"`
			Index *struct {
				Digest    string `json:"digest"`
				MediaType string `json:"mediaType"`
			} `json:"index"`
			Members []struct {
				Tag      string `json:"tag"`
				Platform string `json:"platform"`
				Digest   string `json:"digest"`
				Included bool   `json:"included"`
				Problem  string `json:"problem"`
			} `json:"members"`
			Missing []string `json:"missing"`
		} `json:"groups"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if doc.Repository != reg.Host+"/team/app" || len(doc.Groups) != 1 {
		t.Fatalf("%s", out)
	}
	g := doc.Groups[0]
	d, _, _ := migratetest.StartProxy(t, reg, nil).Get(t, "team/app", "legacy")
	if g.Base != "legacy" || g.Bare != "image" || g.Index == nil || g.Index.Digest != d || g.Index.MediaType == "" {
		t.Errorf("group %+v; proxy serves %s", g, d)
	}
	if len(g.Members) != 2 || g.Members[0].Tag != "legacy" || g.Members[0].Digest != l.Digests["legacy"] || !g.Members[0].Included ||
		g.Members[1].Platform != "linux/arm64/v8" || !g.Members[1].Included {
		t.Errorf("members %+v", g.Members)
	}
	if len(g.Missing) != 1 || g.Missing[0] != "linux/riscv64" {
		t.Errorf("missing %q", g.Missing)
	}
}

func TestInspectCommandErrors(t *testing.T) {
	t.Parallel()
	reg := regtest.NewRegistry(t)
	migratetest.SeedLegacy(t, reg, "team/app")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"inspect", "app"}, `bad reference "app": want REGISTRY/REPO[:BASE]`},
		{[]string{"inspect", "team/app:1.0"}, `bad reference "team/app:1.0": want REGISTRY/REPO[:BASE]`},
		{[]string{"inspect", reg.Host + "/team/app@sha256:" + strings.Repeat("a", 64)}, "a digest names one manifest"},
		{[]string{"inspect", reg.Host + "/Team/App"}, `bad reference "` + reg.Host + `/Team/App"`},
		{[]string{"inspect", reg.Host + "/team/app:-bad"}, `"-bad" is not a valid tag`},
		{[]string{"inspect", reg.Host + "/no/such"}, reg.Host + "/no/such: repository not found"},
		{[]string{"inspect", reg.Host + "/team/app:9.9"}, `has no tag "9.9"`},
		{[]string{"inspect", reg.Host + "/team/app", "--expect", "linux/amd46"}, "--expect: platform"},
		{[]string{"inspect", reg.Host + "/team/app", "--config", filepath.Join(t.TempDir(), "none.yaml")}, "config: open"},
		{[]string{"inspect"}, "accepts 1 arg(s), received 0"},
	} {
		_, _, err := execRoot(t, c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.args, err, c.want)
		}
	}
}

// A registry that wants a login: without credentials one clear line; with
// them in docker's config (the default keychain), the report.
func TestInspectCommandCredentials(t *testing.T) {
	host := regtest.NewRegistry(t, regtest.WithHtpasswd(regtest.Htpasswd(t, map[string]string{"ci": "s3cret"}))).Host

	dockerConfig := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dockerConfig)
	_, _, err := execRoot(t, "inspect", host+"/team/app")
	if want := host + "/team/app: unauthorized: no valid credentials for " + host; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error %v, want %q", err, want)
	}

	auth := base64.StdEncoding.EncodeToString([]byte("ci:s3cret"))
	cfg := `{"auths": {"` + host + `": {"auth": "` + auth + `"}}}`
	if err := os.WriteFile(filepath.Join(dockerConfig, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host + "/team/app:solo-linux-amd64")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, regtest.PlatformImage(t, "linux/amd64", false), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		t.Fatal(err)
	}
	out, _, err := execRoot(t, "inspect", host+"/team/app")
	if err != nil {
		t.Fatal(err)
	}
	if row := rowOf(t, out, "solo"); row[1] != "absent" || row[4] != "create" {
		t.Errorf("solo row %q", row)
	}
}
