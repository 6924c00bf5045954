package crossbuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// CompileError is `go` failing: the package does not load, or does not
// compile for one platform. Error is one line; Output is what Go printed.
type CompileError struct {
	// Platform is "" when the package could not be listed.
	Platform string
	Package  string
	Err      error
	Output   string
}

func (e *CompileError) Error() string {
	if e.Platform == "" {
		return fmt.Sprintf("loading %s: %v", e.Package, e.Err)
	}
	return fmt.Sprintf("compiling %s for %s: %v", e.Package, e.Platform, e.Err)
}

func (e *CompileError) Unwrap() error { return e.Err }

// goPackage is the main package being built.
type goPackage struct {
	Name, ImportPath, Dir string
}

// binaryName is what `go build` names the binary: the last element of
// the import path, skipping a major-version suffix (example.com/app/v2
// is "app").
func (p goPackage) binaryName() string {
	name := path.Base(p.ImportPath)
	if majorRE.MatchString(name) {
		if parent := path.Base(path.Dir(p.ImportPath)); parent != "." && parent != "/" {
			name = parent
		}
	}
	if name == "." || name == "/" || name == "" {
		name = "app"
	}
	return name
}

var majorRE = regexp.MustCompile(`^v[2-9][0-9]*$`)

// listPackage resolves pkg with `go list` and checks it is a command.
func listPackage(ctx context.Context, goBin, dir string, env []string, pkg string) (goPackage, error) {
	cmd := exec.CommandContext(ctx, goBin, "list", "-json=Name,ImportPath,Dir", "--", pkg)
	cmd.Dir, cmd.Env = dir, env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return goPackage{}, &CompileError{Package: pkg, Err: err, Output: stderr.String()}
	}
	var p goPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	if err := dec.Decode(&p); err != nil {
		return goPackage{}, fmt.Errorf("go list %s: %w", pkg, err)
	}
	if dec.More() {
		return goPackage{}, fmt.Errorf("%s names several packages; build one main package", pkg)
	}
	if p.Name != "main" {
		return goPackage{}, fmt.Errorf("%s (%s) is package %s, not a main package", pkg, p.ImportPath, p.Name)
	}
	return p, nil
}

// goBuildArgs are the flags of every `go build`. -buildvcs=false keeps the
// binary independent of the work tree's state (an untracked file would flip
// vcs.modified); -trimpath of the checkout's location.
func goBuildArgs(o *Options, out, pkg string) []string {
	args := []string{"build", "-o", out, "-buildvcs=false"}
	if !o.NoTrimpath {
		args = append(args, "-trimpath")
	}
	if len(o.GoTags) > 0 {
		args = append(args, "-tags", strings.Join(o.GoTags, ","))
	}
	if o.LDFlags != "" {
		args = append(args, "-ldflags", o.LDFlags)
	}
	return append(args, "--", pkg)
}

// compile builds the package for t into dir, which go names the binary
// in (as `go build` does: the import path's last element, .exe on
// Windows). dir is the same on every run: when the binary there is up to
// date (its build ID matches), the go command neither relinks nor
// rewrites it, which is what makes a no-change rebuild cheap.
func compile(ctx context.Context, o *Options, t Target, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, o.GoBinary, goBuildArgs(o, dir+string(filepath.Separator), o.Package)...)
	cmd.Dir = o.Dir
	cmd.Env = append(append(append([]string(nil), o.Env...), "CGO_ENABLED=0"), t.GoEnv...)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &CompileError{Platform: t.String(), Package: o.Package, Err: err, Output: output.String()}
	}
	return nil
}

// cacheKey names the directory that keeps one package's binaries and
// layers between runs.
func cacheKey(o *Options) string {
	h := sha256.New()
	for _, s := range []string{o.Dir, o.Package} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	name := filepath.Base(filepath.Join(o.Dir, filepath.FromSlash(o.Package)))
	if !strings.HasPrefix(o.Package, ".") && !filepath.IsAbs(o.Package) {
		name = path.Base(o.Package) // an import path
	}
	return name + "-" + hex.EncodeToString(h.Sum(nil))[:16]
}

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return ": " + strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}

// gitShortCommit is the short commit of HEAD when dir is in a git work
// tree, else "".
func gitShortCommit(ctx context.Context, dir string) string {
	cmd := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
