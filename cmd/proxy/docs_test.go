package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"

	"github.com/manifold-proxy/manifold/config"
)

var update = flag.Bool("update", false, "rewrite docs/cli from the commands")

const cliDocs = "../../docs/cli"

// TestCLIReference: docs/cli is what cobra/doc generates from the
// commands; after changing a command, `go test ./cmd/proxy -run
// TestCLIReference -update` rewrites it.
func TestCLIReference(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	root := newRoot()
	root.DisableAutoGenTag = true // no date line: the pages must be reproducible
	if err := doc.GenMarkdownTree(root, dir); err != nil {
		t.Fatal(err)
	}
	got := readDir(t, dir)
	if *update {
		if err := os.RemoveAll(cliDocs); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(cliDocs, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range got {
			if err := os.WriteFile(filepath.Join(cliDocs, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	want := readDir(t, cliDocs)
	for name, b := range got {
		if w, ok := want[name]; !ok {
			t.Errorf("docs/cli/%s is missing", name)
		} else if !bytes.Equal(b, w) {
			t.Errorf("docs/cli/%s is stale", name)
		}
	}
	for name := range want {
		if _, ok := got[name]; !ok {
			t.Errorf("docs/cli/%s documents no command", name)
		}
	}
	if t.Failed() {
		t.Log("run `go test ./cmd/proxy -run TestCLIReference -update` and commit docs/cli")
	}
}

func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(n)] = b
	}
	return out
}

// TestServeFlagsAreFields: every flag of serve but --config overrides a
// field of config.Fields, and every Flag there is one of serve's.
func TestServeFlagsAreFields(t *testing.T) {
	t.Parallel()
	var fromTable, fromServe []string
	for _, f := range config.Fields() {
		if f.Flag != "" {
			fromTable = append(fromTable, f.Flag)
		}
	}
	newServe().Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name != "config" {
			fromServe = append(fromServe, f.Name)
		}
	})
	slices.Sort(fromTable)
	slices.Sort(fromServe)
	if !slices.Equal(fromTable, fromServe) {
		t.Errorf("config.Fields names the flags %v, serve has %v", fromTable, fromServe)
	}
}
