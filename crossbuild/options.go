package crossbuild

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/platform"
)

// Defaults of Options.
const (
	// DefaultPlatforms are built when Options.Platforms is empty.
	DefaultPlatforms = "linux/amd64,linux/arm64"
	// DefaultPushJobs bounds concurrent blob uploads.
	DefaultPushJobs = 4
)

// Options configure Run. Zero values are defaults; Run fills them in,
// then checks the combination before compiling anything.
type Options struct {
	// Repo is REGISTRY/REPO, where the images are pushed. Required.
	Repo string
	// Tags are the bare tags; each image is pushed as
	// <tag>-<os>-<arch>[-<variant>]. Default: "latest", plus the short
	// commit of HEAD when Dir is in a git work tree.
	Tags []string
	// Platforms are os/arch[/variant], or the single word "all": every
	// linux platform of `go tool dist list` (arm as arm/v7), and windows
	// amd64/arm64 when a base is set for them. Default linux/amd64,
	// linux/arm64.
	Platforms []string
	// Package is the main package to build. Default ".".
	Package string
	// Dir is the directory go runs in and --add sources are relative to.
	// Default: the current directory.
	Dir string

	// Index also pushes the multi-platform index under each bare tag,
	// replacing what the tag held. Default false: the proxy synthesizes
	// the same index from the suffixed tags.
	Index bool
	// DryRun compiles and assembles the images and computes the index,
	// but pushes nothing and reads nothing from Repo. Default false.
	DryRun bool

	// Bases are IMAGE or os/arch[/variant]=IMAGE (see ParseBase). Default:
	// scratch for every platform.
	Bases []string
	// Adds are SRC:DST files or directories copied into every image (see
	// ParseAdd). Default none.
	Adds []string

	// Jobs is how many platforms compile at once. Default GOMAXPROCS.
	Jobs int
	// LDFlags is passed to go build -ldflags. Default none.
	LDFlags string
	// GoTags are go build -tags. Default none.
	GoTags []string
	// NoTrimpath builds without -trimpath. Default false (-trimpath on).
	NoTrimpath bool
	// GoBinary is the go command. Default "go".
	GoBinary string
	// Env is the environment of the go command; SOURCE_DATE_EPOCH is read
	// from it. CGO_ENABLED=0, GOOS, GOARCH and the variant variable are
	// always set per platform. Default os.Environ().
	Env []string
	// CacheDir keeps each platform's binary and compressed layer between
	// runs, so an unchanged platform is neither relinked nor recompressed.
	// Default: <user cache dir>/manifold/build.
	CacheDir string

	// Insecure talks plain HTTP to the registries (loopback and private
	// addresses always do). Default false.
	Insecure bool
	// Keychain finds registry credentials. Default authn.DefaultKeychain
	// (docker config, credential helpers).
	Keychain authn.Keychain
	// Transport for registry requests. Default remote.DefaultTransport.
	Transport http.RoundTripper
	// PushJobs bounds concurrent blob uploads. Default DefaultPushJobs.
	PushJobs int

	// Progress receives an Event per step of each platform. Default: none.
	Progress func(Event)
	// Logger receives debug details. Default: silent.
	Logger *slog.Logger
}

// plan is the validated form of Options.
type plan struct {
	repo    name.Repository
	tags    []string
	targets []Target
	skipped []string        // platforms of "all" left out, and why
	fromAll map[string]bool // targets that only "all" asked for
	bases   []Base
	adds    []Add
	mtime   time.Time
}

// defaults fills in zero values.
func (o *Options) defaults(ctx context.Context) error {
	if o.Package == "" {
		o.Package = "."
	}
	if o.Dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		o.Dir = wd
	}
	if len(o.Platforms) == 0 {
		o.Platforms = []string{DefaultPlatforms}
	}
	if o.Jobs <= 0 {
		o.Jobs = runtime.GOMAXPROCS(0)
	}
	if o.PushJobs <= 0 {
		o.PushJobs = DefaultPushJobs
	}
	if o.GoBinary == "" {
		o.GoBinary = "go"
	}
	if o.Env == nil {
		o.Env = os.Environ()
	}
	if o.CacheDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return fmt.Errorf("cache dir: %w", err)
		}
		o.CacheDir = filepath.Join(dir, "manifold", "build")
	}
	if o.Keychain == nil {
		o.Keychain = authn.DefaultKeychain
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Progress == nil {
		o.Progress = func(Event) {}
	}
	if len(o.Tags) == 0 {
		o.Tags = []string{"latest"}
		if c := gitShortCommit(ctx, o.Dir); c != "" {
			o.Tags = append(o.Tags, c)
		}
	}
	return nil
}

// validate checks everything that can be checked without compiling.
func (o *Options) validate(ctx context.Context) (*plan, error) {
	var p plan
	if o.Repo == "" {
		return nil, errors.New("no repository: set --repo REGISTRY/REPO")
	}
	var nopts []name.Option
	if o.Insecure {
		nopts = append(nopts, name.Insecure)
	}
	repo, err := name.NewRepository(o.Repo, nopts...)
	if err != nil {
		return nil, fmt.Errorf("repository %q: %w", o.Repo, err)
	}
	p.repo = repo

	seenTag := map[string]bool{}
	for _, t := range o.Tags {
		if !index.ValidTag(t) || index.IsReferrerTag(t) {
			return nil, fmt.Errorf("tag %q is not a valid tag", t)
		}
		if s, ok := (index.Grammar{}).Parse(t); ok {
			return nil, fmt.Errorf("tag %q already ends in the platform suffix of %s; give the bare tag (%s)", t, platform.String(s.Platform), s.Base)
		}
		if !seenTag[t] {
			seenTag[t] = true
			p.tags = append(p.tags, t)
		}
	}

	for _, s := range o.Bases {
		b, err := ParseBase(s)
		if err != nil {
			return nil, err
		}
		p.bases = append(p.bases, b)
	}
	for _, s := range o.Adds {
		a, err := ParseAdd(s)
		if err != nil {
			return nil, err
		}
		p.adds = append(p.adds, a)
	}

	if p.targets, p.fromAll, p.skipped, err = o.targets(ctx, p.bases); err != nil {
		return nil, err
	}
	for _, b := range p.bases {
		if b.Platform == nil {
			continue
		}
		want := platform.String(platform.Normalize(*b.Platform))
		if !slices.ContainsFunc(p.targets, func(t Target) bool { return t.String() == want }) {
			return nil, fmt.Errorf("base %s=%s: %s is not among the platforms built", want, b.Image, want)
		}
	}
	for _, t := range p.targets {
		for _, tag := range p.tags {
			if full := index.FormatTag(tag, t.Platform); !index.ValidTag(full) {
				return nil, fmt.Errorf("tag %q is too long for its platform suffix (%s)", tag, full)
			}
		}
	}

	p.mtime = time.Unix(0, 0).UTC()
	if s := lookupEnv(o.Env, "SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", s)
		}
		p.mtime = time.Unix(n, 0).UTC()
	}
	return &p, nil
}

// targets parses the platform list. A platform named explicitly must be
// buildable; with "all", the ones that cannot be (windows with no base)
// are skipped and reported.
func (o *Options) targets(ctx context.Context, bases []Base) (ts []Target, fromAll map[string]bool, skipped []string, err error) {
	var list []string
	for _, s := range o.Platforms {
		for _, f := range strings.Split(s, ",") {
			if f = strings.TrimSpace(f); f != "" {
				list = append(list, f)
			}
		}
	}
	all := false
	seen := map[string]bool{}
	for _, s := range list {
		if s == "all" {
			all = true
			continue
		}
		t, err := ParseTarget(s)
		if err != nil {
			return nil, nil, nil, err
		}
		if t.Platform.OS == "windows" && baseFor(bases, t) == Scratch {
			return nil, nil, nil, windowsScratchError(t)
		}
		if !seen[t.String()] {
			seen[t.String()] = true
			ts = append(ts, t)
		}
	}
	fromAll = map[string]bool{}
	if all {
		every, err := allTargets(ctx, o.GoBinary, o.Dir, o.Env)
		if err != nil {
			return nil, nil, nil, err
		}
		for _, t := range every {
			if seen[t.String()] {
				continue
			}
			if t.Platform.OS == "windows" && baseFor(bases, t) == Scratch {
				skipped = append(skipped, windowsScratchError(t).Error())
				continue
			}
			seen[t.String()] = true
			fromAll[t.String()] = true
			ts = append(ts, t)
		}
	}
	if len(ts) == 0 {
		return nil, nil, nil, errors.New("no platform to build")
	}
	SortTargets(ts)
	return ts, fromAll, skipped, nil
}

func windowsScratchError(t Target) error {
	return &UnsupportedPlatformError{
		Platform: t.String(),
		Reason: "needs a Windows base image (--base IMAGE or --base " + t.String() + "=IMAGE, e.g. mcr.microsoft.com/windows/nanoserver): " +
			"a Windows container runs on the OS layers of its base image and cannot start from scratch",
	}
}

func lookupEnv(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val // the last one wins, as in exec.Cmd
		}
	}
	return v
}
