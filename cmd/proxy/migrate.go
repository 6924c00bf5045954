package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/migrate"
	"github.com/manifold-proxy/manifold/upstream"
)

type migrateFlags struct {
	repoFlags
	tags                      []string
	dryRun, force, prune, yes bool
	json                      bool
	plan                      string
}

// repoFlags are shared by inspect and migrate.
type repoFlags struct {
	config   string
	insecure bool
}

func (f *repoFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "the proxy's YAML configuration: bare-tag policies, tag grammar and limits (default: the proxy's defaults, merge everywhere)")
	fl.BoolVar(&f.insecure, "insecure", false, "talk plain HTTP to a registry that is not on loopback (loopback always is)")
}

func newMigrate() *cobra.Command {
	var f migrateFlags
	cmd := &cobra.Command{
		Use:   "migrate {REGISTRY/REPO[:BASE] | --plan FILE}",
		Short: "Write the indexes the proxy serves into the registry, byte for byte",
		Long: `Migrate turns per-platform tags into real multi-platform indexes: for every
base (or the ones named with --tag) it pushes, under the bare tag, the very
index the proxy serves for it — same policies, same bytes, same digest — so
every app@sha256:... pinned through the proxy keeps working without it.

A bare tag that already holds that index is unchanged. One that holds another
real index is a conflict, reported and left alone unless --force. Bases the
proxy passes through (policy off or fallback over a single-platform bare tag)
are skipped. --dry-run prints the plan and writes nothing.

--prune-suffixed --yes then untags the per-platform tags, only once the index
has been read back identical, and only those whose manifest the index lists:
members left out of it, and member indexes, are kept. Manifests are never
deleted, only tags.

--plan FILE applies a plan saved earlier with proxy inspect --json (FILE "-"
reads standard input), so that what was reviewed is what is written: the
plan names the repository and the bases, every base is inspected again
first, and one whose action, index digest, bare tag, member digests or tags
to prune changed since is refused as stale (nothing is written for it, and
the command fails). A plan for another repository, or made under another
bare-tag policy, is refused as a whole.`,
		Example: `  proxy migrate registry.example.com/team/app --dry-run
  proxy migrate registry.example.com/team/app --config /etc/manifold/config.yaml
  proxy migrate localhost:5000/team/app --tag 1.4 --prune-suffixed --yes
  proxy inspect registry.example.com/team/app --json > plan.json
  proxy migrate --plan plan.json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return cliError(runMigrate(cmd, f, args))
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.StringSliceVar(&f.tags, "tag", nil, "migrate only this base (repeatable, or comma-separated)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the plan (create, update, unchanged, conflict, skip) and write nothing")
	fl.BoolVar(&f.force, "force", false, "replace a bare tag's conflicting real index with the members' index")
	fl.BoolVar(&f.prune, "prune-suffixed", false, "after verifying each index, untag the per-platform tags it lists (needs --yes)")
	fl.BoolVar(&f.yes, "yes", false, "confirm --prune-suffixed")
	fl.BoolVar(&f.json, "json", false, "print the outcome as JSON")
	fl.StringVar(&f.plan, "plan", "", "apply the plan in FILE, saved with proxy inspect --json (\"-\": standard input), after checking it still holds")
	return cmd
}

func runMigrate(cmd *cobra.Command, f migrateFlags, args []string) error {
	if f.prune && !f.yes && !f.dryRun {
		return errors.New("--prune-suffixed untags per-platform tags: add --yes to confirm, or --dry-run to see what it would untag")
	}
	var saved *migrate.Plan
	switch {
	case f.plan != "" && len(args) > 0:
		return errors.New("--plan names the repository and its bases: give no REGISTRY/REPO")
	case f.plan != "" && len(f.tags) > 0:
		return errors.New("--plan names the bases: give no --tag")
	case f.plan != "":
		var err error
		if saved, err = readPlan(cmd, f.plan); err != nil {
			return err
		}
		args = []string{saved.Repository}
	case len(args) == 0:
		return errors.New("give REGISTRY/REPO[:BASE], or --plan FILE")
	}
	bar := newBaseBar(cmd, f.json)
	m, base, err := newRepoMigrator(f.repoFlags, args[0], nil, bar.update)
	if err != nil {
		return err
	}
	bases := f.tags
	if base != "" {
		bases = append(bases, base)
	}
	for _, b := range bases {
		if !index.ValidTag(b) {
			return fmt.Errorf("--tag %q is not a valid tag", b)
		}
	}
	var r *migrate.Plan
	if saved != nil {
		r, err = m.Verify(cmd.Context(), saved)
	} else {
		r, err = m.Inspect(cmd.Context(), bases...)
	}
	bar.finish()
	if err != nil {
		return err
	}
	s := m.Apply(cmd.Context(), r, migrate.ApplyOptions{DryRun: f.dryRun, Force: f.force, Prune: f.prune})
	bar.finish()
	out := cmd.OutOrStdout()
	if f.json {
		err = s.WriteJSON(out)
	} else {
		err = s.WriteText(out)
	}
	if err != nil {
		return err
	}
	if err := cmd.Context().Err(); err != nil {
		return err
	}
	return s.Err()
}

// readPlan reads the plan saved in file ("-": standard input).
func readPlan(cmd *cobra.Command, file string) (*migrate.Plan, error) {
	in := cmd.InOrStdin()
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("--plan: %w", err)
		}
		defer f.Close()
		in = f
	}
	p, err := migrate.ReadPlan(in)
	if err != nil {
		return nil, fmt.Errorf("--plan %s: %w", file, err)
	}
	return p, nil
}

// newRepoMigrator parses REGISTRY/REPO[:BASE], reads the proxy's
// configuration and makes a Migrator for the repository that reports its
// progress to progress.
func newRepoMigrator(f repoFlags, arg string, expect []v1.Platform, progress func(migrate.Progress)) (*migrate.Migrator, string, error) {
	repo, base, err := parseRepoArg(arg, f.insecure)
	if err != nil {
		return nil, "", err
	}
	cfg, err := loadConfig(f.config, nil)
	if err != nil {
		return nil, "", err
	}
	c, err := upstream.New(upstream.Options{
		URL:       registryURL(repo.Registry, f.insecure),
		Keychain:  authn.DefaultKeychain,
		UserAgent: userAgent(),
		// Through a manifold proxy, see what the registry behind it holds.
		Header: http.Header{upstream.HeaderSynthesis: {"off"}},
	})
	if err != nil {
		return nil, "", err
	}
	m, err := migrate.New(migrateOptions(cfg, c, repo, expect, progress))
	return m, base, err
}

// parseRepoArg parses REGISTRY/REPO[:BASE]. The registry must be named
// (a host with a dot or a port, or localhost), so that a typo never lands
// on Docker Hub; digests are refused.
func parseRepoArg(s string, insecure bool) (name.Repository, string, error) {
	bad := func(why string) (name.Repository, string, error) {
		return name.Repository{}, "", fmt.Errorf("bad reference %q: %s", s, why)
	}
	if strings.Contains(s, "@") {
		return bad("a digest names one manifest; give REGISTRY/REPO[:BASE]")
	}
	host, _, ok := strings.Cut(s, "/")
	if !ok || !(strings.ContainsAny(host, ".:") || host == "localhost") {
		return bad("want REGISTRY/REPO[:BASE], e.g. registry.example.com/team/app:1.4")
	}
	repoPart, base := s, ""
	if i := strings.LastIndex(s, ":"); i > strings.LastIndex(s, "/") {
		repoPart, base = s[:i], s[i+1:]
		if !index.ValidTag(base) {
			return bad(fmt.Sprintf("%q is not a valid tag", base))
		}
	}
	var opts []name.Option
	opts = append(opts, name.StrictValidation)
	if insecure {
		opts = append(opts, name.Insecure)
	}
	repo, err := name.NewRepository(repoPart, opts...)
	if err != nil {
		return bad(err.Error())
	}
	return repo, base, nil
}

// registryURL is http:// for loopback registries and with --insecure, else
// https://.
func registryURL(reg name.Registry, insecure bool) string {
	host := reg.RegistryStr()
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	ip := net.ParseIP(h)
	if insecure || h == "localhost" || (ip != nil && ip.IsLoopback()) {
		return "http://" + host
	}
	return "https://" + host
}

// cliError keeps CLI errors to one line.
func cliError(err error) error {
	if err == nil {
		return nil
	}
	s := err.Error()
	if !strings.ContainsAny(s, "\r\n") {
		return err
	}
	return errors.New(strings.Join(strings.Fields(strings.NewReplacer("\r", " ", "\n", "; ").Replace(s)), " "))
}

// baseBar shows progress over bases: a bar redrawn in place on a terminal,
// a few plain lines otherwise (only for long repositories).
type baseBar struct {
	w     io.Writer
	tty   bool
	mu    sync.Mutex
	drawn bool
	tenth map[string]int
}

// newBaseBar draws on stdout when it is a terminal (and not --json), else
// on stderr when that is one, else writes plain lines to stderr.
func newBaseBar(cmd *cobra.Command, json bool) *baseBar {
	b := &baseBar{w: cmd.ErrOrStderr(), tenth: map[string]int{}}
	switch {
	case !json && isTerminal(cmd.OutOrStdout()):
		b.w, b.tty = cmd.OutOrStdout(), true
	case isTerminal(cmd.ErrOrStderr()):
		b.tty = true
	}
	return b
}

// isTerminal: a character device that is not /dev/null (which is one too:
// `proxy inspect > /dev/null` must not get a bar).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(st, null)
}

const barWidth = 30

func (b *baseBar) update(p migrate.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	verb := map[string]string{"inspect": "inspecting", "migrate": "migrating"}[p.Phase]
	if verb == "" {
		verb = p.Phase
	}
	if b.tty {
		n := barWidth * p.Done / max(p.Total, 1)
		fill := strings.Repeat("=", n)
		if n < barWidth {
			fill += ">"
		}
		fmt.Fprintf(b.w, "\r\x1b[K%-10s [%-*s] %d/%d %s", verb, barWidth, fill, p.Done, p.Total, p.Base)
		b.drawn = true
		return
	}
	// Plain lines: every tenth of a long phase.
	if p.Total < 20 {
		return
	}
	if t := 10 * p.Done / p.Total; t > b.tenth[p.Phase] {
		b.tenth[p.Phase] = t
		fmt.Fprintf(b.w, "%s: %d/%d bases\n", verb, p.Done, p.Total)
	}
}

// finish erases the bar before output is written.
func (b *baseBar) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drawn {
		fmt.Fprint(b.w, "\r\x1b[K")
		b.drawn = false
	}
}
