package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// quickstartAddr is where the README's quickstart listens, as written.
const quickstartAddr = "127.0.0.1:5000"

// quickstartEnd is appended to the block: the block must have stopped the
// proxy it started in the background (its last line); this waits, bounded,
// for that, fails if it did not, and reaps it, so that nothing outlives the
// script.
const quickstartEnd = `
# appended by TestQuickstart
for i in $(seq 100); do [ -z "$(jobs -pr)" ] && break; sleep 0.1; done
if [ -n "$(jobs -pr)" ]; then echo "TestQuickstart: the quickstart left running: pid $(jobs -pr)" >&2; exit 97; fi
wait || true
`

// craneShim records each crane call of the quickstart (its arguments and
// stdout) so that the test can check what the commands printed, not only
// that they succeeded.
const craneShim = `#!/bin/bash
set -o pipefail
d=$(mktemp -d "$QUICKSTART_LOG/crane.XXXXXX")
printf '%s\n' "$@" > "$d/args"
"$QUICKSTART_CRANE" "$@" | tee "$d/stdout"
`

// TestQuickstart runs the README's quickstart — the ```sh block under
// "## Quickstart" — as written, with bash and `set -euo pipefail` (any
// failing line fails the test), in a fresh copy of the repository's
// tracked files, with crane on PATH and DOCKER_HOST pointing at a private
// dockerd (without one outside CI, only the docker lines are left out, and
// the test says so). Then it checks what the commands printed: the
// synthesized index lists linux/amd64, linux/arm64/v8 and linux/arm/v7;
// `crane manifest --platform linux/arm/v7` is that entry's manifest; the
// image docker pulled for linux/arm64 is arm64 and came from that index;
// migrate would create that same index digest.
//
// The block listens on 127.0.0.1:5000 as written; the test fails with a
// message when that port is taken. The script runs in its own process
// group, bounded in time, and the group is killed by its id at the end.
func TestQuickstart(t *testing.T) {
	s := shared(t)
	crane := requireTool(t, "crane", hintCrane)
	requireTool(t, "curl", hintCurl)
	if ln, err := net.Listen("tcp", quickstartAddr); err != nil {
		t.Fatalf("the README quickstart listens on %s as written, but that address is taken (%v): stop what listens there (ss -ltnp 'sport = :5000') and run again", quickstartAddr, err)
	} else {
		ln.Close()
	}

	root := strings.TrimSpace(string(run(t, command{bin: "git", args: []string{"rev-parse", "--show-toplevel"}})))
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	block, err := quickstartBlock(string(readme))
	if err != nil {
		t.Fatal(err)
	}

	dir := s.tempDir(t, "quickstart")
	clone := filepath.Join(dir, "clone")
	copyTracked(t, root, clone)
	logDir, shimDir := filepath.Join(dir, "log"), filepath.Join(dir, "shim")
	for _, d := range []string{logDir, shimDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(shimDir, "crane"), []byte(craneShim), 0o755); err != nil {
		t.Fatal(err)
	}

	extra := append(goCacheEnv(t), "QUICKSTART_LOG="+logDir, "QUICKSTART_CRANE="+crane)

	var dk *dockerDaemon
	if why := dockerUnavailable(); why != "" {
		if inCI() {
			t.Fatalf("the quickstart pulls with docker, but %s (CI=true: a missing client is a failure, not a skip)", why)
		}
		block = dropLines(t, block, "docker ", why)
	} else {
		dk = startDocker(t, s)
		extra = append(extra, "DOCKER_HOST=unix://"+dk.sock, envOf(dk.env, "DOCKER_CONFIG"))
	}
	env := s.env(append(extra, "PATH="+shimDir+":"+strings.TrimPrefix(envOf(s.env(), "PATH"), "PATH="))...)

	script := filepath.Join(dir, "quickstart.sh")
	if err := os.WriteFile(script, []byte("set -euxo pipefail\n"+block+quickstartEnd), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := runScript(t, clone, env, "bash", script)
	t.Logf("quickstart stdout:\n%s", stdout)
	if err != nil {
		t.Fatalf("the README quickstart failed: %v\nstderr (bash -x trace and the proxy's log):\n%s", err, lastLines(string(stderr), 60))
	}

	checkQuickstart(t, stdout, logDir, dk)
}

// checkQuickstart checks what the quickstart's commands printed.
func checkQuickstart(t *testing.T, stdout []byte, logDir string, dk *dockerDaemon) {
	t.Helper()
	idxBytes := craneOutput(t, logDir, "manifest", quickstartAddr+"/demo/hello:1.0")
	var idx v1.IndexManifest
	if err := json.Unmarshal(idxBytes, &idx); err != nil {
		t.Fatalf("crane manifest demo/hello:1.0: not an index: %v\n%s", err, idxBytes)
	}
	idxDigest := sha256Of(idxBytes)
	var plats []string
	byPlat := map[string]v1.Descriptor{}
	for _, e := range idx.Manifests {
		if e.Platform == nil {
			t.Errorf("crane manifest demo/hello:1.0: entry %s without platform", e.Digest)
			continue
		}
		p := spelling{e.Platform.OS, e.Platform.Architecture, e.Platform.Variant}.String()
		plats = append(plats, p)
		byPlat[p] = e
	}
	slices.Sort(plats)
	if want := []string{"linux/amd64", "linux/arm/v7", "linux/arm64/v8"}; !idx.MediaType.IsIndex() || !slices.Equal(plats, want) {
		t.Errorf("crane manifest demo/hello:1.0: %s with platforms %v; want an index of %v:\n%s", idx.MediaType, plats, want, idxBytes)
	}
	armv7 := craneOutput(t, logDir, "manifest", "--platform", "linux/arm/v7", quickstartAddr+"/demo/hello:1.0")
	if d := sha256Of(armv7); d != byPlat["linux/arm/v7"].Digest {
		t.Errorf("crane manifest --platform linux/arm/v7: manifest %s, the index lists %s for linux/arm/v7", d, byPlat["linux/arm/v7"].Digest)
	}
	if mt := mediaTypeOf(t, armv7); !types.MediaType(mt).IsImage() {
		t.Errorf("crane manifest --platform linux/arm/v7: %s, want an image manifest", mt)
	}
	// inspect and migrate name the index the proxy served.
	if !strings.Contains(string(stdout), "index "+idxDigest.Hex[:12]) {
		t.Errorf("proxy inspect: want the matrix to show the index %s crane got; stdout:\n%s", idxDigest.Hex[:12], stdout)
	}
	if !regexp.MustCompile(`(?m)^create\s+1\.0\s+` + idxDigest.String() + `$`).Match(stdout) {
		t.Errorf("proxy migrate --dry-run: want the plan to create 1.0 as %s, the index crane got; stdout:\n%s", idxDigest, stdout)
	}
	if dk != nil {
		var img struct {
			Architecture string   `json:"Architecture"`
			Variant      string   `json:"Variant"`
			RepoDigests  []string `json:"RepoDigests"`
		}
		out := run(t, dk.command("image", "inspect", "--format", "{{json .}}", quickstartAddr+"/demo/hello:1.0"))
		if err := json.Unmarshal(out, &img); err != nil {
			t.Fatalf("docker image inspect: %v: %s", err, out)
		}
		if img.Architecture != "arm64" || !slices.Contains(img.RepoDigests, quickstartAddr+"/demo/hello@"+idxDigest.String()) {
			t.Errorf("docker pull --platform linux/arm64: image %s/%s from %v; want arm64 from the index %s", img.Architecture, img.Variant, img.RepoDigests, idxDigest)
		}
	}
}

// quickstartBlock returns the first ```sh block under "## Quickstart".
func quickstartBlock(readme string) (string, error) {
	return shBlock(readme, "README.md", "Quickstart")
}

// shBlock returns the first ```sh block under the "## <section>" heading
// of doc (the Markdown file file).
func shBlock(doc, file, section string) (string, error) {
	_, sec, ok := strings.Cut(doc, "\n## "+section+"\n")
	if !ok {
		return "", fmt.Errorf("%s has no %q section", file, "## "+section)
	}
	if i := strings.Index(sec, "\n## "); i >= 0 {
		sec = sec[:i]
	}
	_, body, ok := strings.Cut(sec, "```sh\n")
	if !ok {
		return "", fmt.Errorf("%s: no ```sh block under ## %s", file, section)
	}
	body, _, ok = strings.Cut(body, "```")
	if !ok {
		return "", fmt.Errorf("%s: the ```sh block under ## %s is not closed", file, section)
	}
	return body, nil
}

// copyTracked copies the files git tracks in root (as they are in the work
// tree) to dst: what a fresh clone of the work tree would hold.
func copyTracked(t *testing.T, root, dst string) {
	t.Helper()
	out := run(t, command{bin: "git", args: []string{"-C", root, "ls-files", "-z"}})
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src, to := filepath.Join(root, f), filepath.Join(dst, f)
		fi, err := os.Lstat(src)
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the work tree, not committed yet
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(src)
			if err == nil {
				err = os.Symlink(target, to)
			}
			if err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := copyFile(src, to, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
}

func copyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// goCacheEnv is the environment that gives a script the go command of the
// test with its caches (the suite built the proxy already, so every module
// is there: nothing is downloaded).
func goCacheEnv(t *testing.T) []string {
	t.Helper()
	goEnv := strings.Fields(string(run(t, command{bin: "go", args: []string{"env", "GOCACHE", "GOMODCACHE", "GOPATH"}})))
	if len(goEnv) != 3 {
		t.Fatalf("go env GOCACHE GOMODCACHE GOPATH: %q", goEnv)
	}
	return []string{"GOCACHE=" + goEnv[0], "GOMODCACHE=" + goEnv[1], "GOPATH=" + goEnv[2], "GOPROXY=off"}
}

// runScript runs `name args...` (bash and a script) in dir, in a process
// group of its own, for at most 10 minutes (a cold build cache
// cross-compiles the standard library three times). The group is killed
// by its id when the script ends or times out, so nothing it started
// outlives the test.
func runScript(t *testing.T, dir string, env []string, name string, args ...string) ([]byte, []byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = dir, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	err := cmd.Wait()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timed out after 10m: %w", err)
	}
	// What the script left running (only when it failed: its end reaps
	// the proxy): the group is bash's pid. ESRCH when nothing is left.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	return stdout.Bytes(), stderr.Bytes(), err
}

// craneOutput returns the stdout of the quickstart's crane call with
// exactly these arguments.
func craneOutput(t *testing.T, logDir string, args ...string) []byte {
	t.Helper()
	calls, _ := filepath.Glob(filepath.Join(logDir, "crane.*"))
	var seen []string
	for _, c := range calls {
		a, err := os.ReadFile(filepath.Join(c, "args"))
		if err != nil {
			continue
		}
		got := strings.Split(strings.TrimRight(string(a), "\n"), "\n")
		if slices.Equal(got, args) {
			out, err := os.ReadFile(filepath.Join(c, "stdout"))
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		seen = append(seen, strings.Join(got, " "))
	}
	t.Fatalf("the quickstart ran no `crane %s` (it ran: %q)", strings.Join(args, " "), seen)
	return nil
}

// dockerUnavailable says why the private dockerd cannot run here, or "".
func dockerUnavailable() string {
	switch {
	case os.Geteuid() != 0:
		return "dockerd needs root"
	case findTool("dockerd") == "":
		return "dockerd is not installed (" + hintDocker + ")"
	case findTool("containerd") == "":
		return "containerd is not installed (" + hintContainerd + ")"
	case findTool("docker") == "":
		return "the docker CLI is not installed (" + hintDocker + ")"
	}
	return ""
}

// envOf returns the KEY=value entry of env for key, or "".
func envOf(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if strings.HasPrefix(env[i], key+"=") {
			return env[i]
		}
	}
	return ""
}
