package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/manifold-proxy/manifold/crossbuild"
	"github.com/manifold-proxy/manifold/platform"
)

type buildFlags struct {
	repo, ldflags, metadataFile, cacheDir string
	tags, platforms, bases, adds, goTags  []string
	index, dryRun, trimpath, insecure     bool
	jobs                                  int
}

func newBuild() *cobra.Command {
	var f buildFlags
	cmd := &cobra.Command{
		Use:   "build [flags] [GO_PACKAGE]",
		Short: "Cross-build a Go program and push one image per platform",
		Long: `Build GO_PACKAGE (default ".") for every platform with CGO_ENABLED=0, put each
binary in an image (no Docker daemon), and push it as <tag>-<os>-<arch>[-<variant>]:
the tags the proxy groups into a multi-platform index under <tag>. Nothing is
pushed unless every platform compiles. Building the same source twice gives the
same digests, and a rebuild with no change pushes nothing.`,
		Example: `  proxy build --repo registry.example.com/app --platform linux/amd64,linux/arm64,linux/arm/v7 ./cmd/app
  proxy build --repo localhost:5000/app --tag 1.4 --add static/:/srv/static --index .
  proxy build --repo localhost:5000/app --platform all --dry-run`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pkg := "."
			if len(args) == 1 {
				pkg = args[0]
			}
			return runBuild(cmd, f, pkg)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.repo, "repo", "", "REGISTRY/REPO to push to (required)")
	fl.StringArrayVar(&f.tags, "tag", nil, `bare tag, repeatable (default "latest" and the short git commit)`)
	fl.StringSliceVar(&f.platforms, "platform", strings.Split(crossbuild.DefaultPlatforms, ","), `platforms os/arch[/variant], comma-separated or repeated, or "all"`)
	fl.BoolVar(&f.index, "index", false, "also push the multi-platform index under each bare tag, replacing what it holds")
	fl.BoolVar(&f.dryRun, "dry-run", false, "build, print the plan and the index JSON, push nothing")
	fl.StringArrayVar(&f.bases, "base", nil, "base image IMAGE, or PLATFORM=IMAGE for one platform, repeatable (default scratch)")
	fl.StringArrayVar(&f.adds, "add", nil, "SRC:DST file or directory to copy into the images, repeatable")
	fl.IntVar(&f.jobs, "jobs", 0, "platforms compiled at once (default: GOMAXPROCS, the number of CPUs)")
	fl.StringVar(&f.ldflags, "ldflags", "", "go build -ldflags")
	fl.StringSliceVar(&f.goTags, "tags", nil, "go build -tags")
	fl.BoolVar(&f.trimpath, "trimpath", true, "go build -trimpath")
	fl.BoolVar(&f.insecure, "insecure", false, "plain HTTP to the registry (automatic for loopback and private addresses)")
	fl.StringVar(&f.metadataFile, "metadata-file", "", "write platform, tags, digest and size of every image and the index digest as JSON to this file")
	fl.StringVar(&f.cacheDir, "cache-dir", "", "binaries and layers kept between runs (default <user cache dir>/manifold/build)")
	_ = cmd.MarkFlagRequired("repo")
	return cmd
}

func runBuild(cmd *cobra.Command, f buildFlags, pkg string) error {
	out := cmd.OutOrStdout()
	prog := newProgress(out)
	res, err := crossbuild.Run(cmd.Context(), buildOptions(f, pkg, prog.event))
	prog.finish()
	if err != nil {
		var ce *crossbuild.CompileError
		if errors.As(err, &ce) && ce.Output != "" {
			fmt.Fprint(cmd.ErrOrStderr(), ce.Output)
		}
		return oneLine(err)
	}
	if res.DryRun {
		printPlan(out, res)
	}
	printTable(out, res)
	if f.metadataFile != "" {
		if err := writeMetadata(f.metadataFile, res); err != nil {
			return oneLine(fmt.Errorf("metadata file: %w", err))
		}
	}
	return nil
}

// oneLine keeps CLI errors to one line: registries sometimes put newlines
// in their messages.
func oneLine(err error) error {
	s := err.Error()
	if !strings.Contains(s, "\n") {
		return err
	}
	return errors.New(strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ; ")), " "))
}

// printPlan is the dry run's account: what would be pushed where, and
// the exact index bytes.
func printPlan(w io.Writer, res *crossbuild.Build) {
	fmt.Fprintf(w, "dry run: nothing pushed to %s\n\n", res.Repository)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PLATFORM\tGO ENVIRONMENT\tBASE\tTAGS")
	for _, im := range res.Images {
		base := "scratch"
		if im.Base != "" {
			base = im.Base + "@" + im.BaseDigest.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", platform.String(im.Platform), strings.Join(append([]string{"CGO_ENABLED=0"}, im.GoEnv...), " "), base, strings.Join(im.Tags, ", "))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nindex %s (%s, %d bytes), the one the proxy serves for %s:\n%s\n\n",
		res.Index.Descriptor.Digest, res.Index.Descriptor.MediaType, res.Index.Descriptor.Size, strings.Join(res.Tags, ", "), res.Index.Bytes)
}

func printTable(w io.Writer, res *crossbuild.Build) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PLATFORM\tTAG\tDIGEST\tSIZE\tSTATUS")
	for _, im := range res.Images {
		for _, tag := range im.Tags {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", platform.String(im.Platform), tag, im.Descriptor.Digest, humanSize(im.Size), im.Status)
		}
	}
	idx := res.Index
	if len(idx.Tags) > 0 {
		for _, it := range idx.Tags {
			fmt.Fprintf(tw, "index\t%s\t%s\t%s\t%s\n", it.Tag, idx.Descriptor.Digest, humanSize(idx.Descriptor.Size), it.Status)
		}
	} else {
		status := "served by the proxy"
		if res.DryRun {
			status = "not pushed"
		}
		fmt.Fprintf(tw, "index\t%s\t%s\t%s\t%s\n", strings.Join(res.Tags, ", "), idx.Descriptor.Digest, humanSize(idx.Descriptor.Size), status)
	}
	tw.Flush()
	for _, s := range res.Warnings {
		fmt.Fprintln(w, "warning:", s)
	}
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// metadata is the --metadata-file format. size and digest (with
// mediaType) describe the manifest, as an index entry does;
// compressedSize is config plus layers.
type metadata struct {
	Repository string          `json:"repository"`
	Package    string          `json:"package"`
	DryRun     bool            `json:"dryRun,omitempty"`
	Images     []metadataImage `json:"images"`
	Index      metadataIndex   `json:"index"`
}

type metadataImage struct {
	Platform       string   `json:"platform"`
	Tags           []string `json:"tags"`
	Digest         string   `json:"digest"`
	Size           int64    `json:"size"`
	MediaType      string   `json:"mediaType"`
	CompressedSize int64    `json:"compressedSize"`
	Status         string   `json:"status"`
}

type metadataIndex struct {
	Tags      []string `json:"tags"`
	Digest    string   `json:"digest"`
	Size      int64    `json:"size"`
	MediaType string   `json:"mediaType"`
	// Pushed is false when the proxy synthesizes it (no --index).
	Pushed bool `json:"pushed"`
}

func writeMetadata(path string, res *crossbuild.Build) error {
	m := metadata{Repository: res.Repository, Package: res.Package, DryRun: res.DryRun, Images: []metadataImage{}}
	for _, im := range res.Images {
		m.Images = append(m.Images, metadataImage{
			Platform: platform.String(im.Platform), Tags: im.Tags, Digest: im.Descriptor.Digest.String(),
			Size: im.Descriptor.Size, MediaType: string(im.Descriptor.MediaType), CompressedSize: im.Size, Status: string(im.Status),
		})
	}
	d := res.Index.Descriptor
	m.Index = metadataIndex{Tags: res.Tags, Digest: d.Digest.String(), Size: d.Size, MediaType: string(d.MediaType), Pushed: len(res.Index.Tags) > 0}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// progress shows build events: on a terminal, one line per platform
// rewritten in place; otherwise one plain line per event.
type progress struct {
	w   io.Writer
	tty bool

	mu      sync.Mutex
	order   []string
	state   map[string]string
	drawn   int
	printed bool
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, state: map[string]string{}, tty: isTerminal(w)}
}

func (p *progress) event(e crossbuild.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e.Stage == crossbuild.StageQueued && !p.tty {
		return
	}
	p.printed = true
	line := string(e.Stage)
	switch e.Stage {
	case crossbuild.StageDone:
		line = string(e.Status)
		if e.Message != "" {
			line += " " + e.Message
		}
	case crossbuild.StageNote:
		if p.tty {
			p.clear()
			fmt.Fprintln(p.w, "note:", e.Message)
			p.draw()
		} else {
			fmt.Fprintln(p.w, "note:", e.Message)
		}
		return
	default:
		line += "…"
	}
	if !p.tty {
		fmt.Fprintf(p.w, "%s: %s\n", e.Platform, line)
		return
	}
	if _, ok := p.state[e.Platform]; !ok {
		p.order = append(p.order, e.Platform)
	}
	p.state[e.Platform] = line
	p.clear()
	p.draw()
}

// clear moves up over the status block and erases it.
func (p *progress) clear() {
	if p.drawn > 0 {
		fmt.Fprintf(p.w, "\x1b[%dA\x1b[J", p.drawn)
	}
	p.drawn = 0
}

func (p *progress) draw() {
	width := 0
	for _, pl := range p.order {
		width = max(width, len(pl))
	}
	for _, pl := range p.order {
		fmt.Fprintf(p.w, "%-*s  %s\n", width, pl, p.state[pl])
	}
	p.drawn = len(p.order)
}

// finish leaves the last state on screen, followed by a blank line.
func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.printed {
		fmt.Fprintln(p.w)
	}
}
