package main

import (
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/manifold-proxy/manifold/platform"
	"github.com/spf13/cobra"
)

type inspectFlags struct {
	repoFlags
	json   bool
	expect string
}

func newInspect() *cobra.Command {
	var f inspectFlags
	cmd := &cobra.Command{
		Use:   "inspect REGISTRY/REPO[:BASE]",
		Short: "Show what a repository's per-platform tags add up to",
		Long: `Inspect reads a repository the way the proxy does and prints the matrix of
base tags × platforms (short digests), the state of each bare tag (absent,
single-platform, real index, or would change), what the proxy serves for it,
what migrate would do, and the problems: members whose config contradicts
their tag, duplicate platforms, members that are indexes (flattened), and
platforms missing against --expect.

--json prints the same as JSON for scripts: {"repository", "groups": [{"base",
"bare", "index", "members": [{"tag", "platform", "digest", "included",
"problem"}], ...}]}; index is the index the proxy serves for the base (its
digest is the proxy's), null when it serves none.`,
		Example: `  proxy inspect registry.example.com/team/app
  proxy inspect registry.example.com/team/app:1.4 --expect linux/amd64,linux/arm64
  proxy inspect localhost:5000/team/app --json --config /etc/manifold/config.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cliError(runInspect(cmd, f, args[0]))
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.BoolVar(&f.json, "json", false, "print the report as JSON")
	fl.StringVar(&f.expect, "expect", "", "platforms every base should have, comma-separated (linux/amd64,linux/arm64,linux/arm/v7)")
	return cmd
}

func runInspect(cmd *cobra.Command, f inspectFlags, arg string) error {
	expect, err := parsePlatforms(f.expect)
	if err != nil {
		return err
	}
	bar := newBaseBar(cmd, f.json)
	m, base, err := newRepoMigrator(f.repoFlags, arg, expect, bar.update)
	if err != nil {
		return err
	}
	var bases []string
	if base != "" {
		bases = []string{base}
	}
	r, err := m.Inspect(cmd.Context(), bases...)
	bar.finish()
	if err != nil {
		return err
	}
	if f.json {
		return r.WriteJSON(cmd.OutOrStdout())
	}
	return r.WriteTable(cmd.OutOrStdout())
}

func parsePlatforms(s string) ([]v1.Platform, error) {
	var out []v1.Platform
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := platform.Parse(f)
		if err != nil {
			return nil, fmt.Errorf("--expect: %w", err)
		}
		out = append(out, p)
	}
	return out, nil
}
