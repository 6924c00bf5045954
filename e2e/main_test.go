package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/manifold-proxy/manifold/embedded"
)

// clientRepos: each client test reads its own copy of the fixtures, so
// that the proxy's request log can tell which manifests a client fetched
// even when tests run in parallel. The copies are identical, so the
// synthesized indexes are too (same members ⇒ same bytes ⇒ same digest).
var clientRepos = []string{"docker", "containerd", "podman", "skopeo", "crane", "regctl", "oras", "shared"}

func repoFor(client string) string { return "e2e/" + client }

// suite is what every test shares: the upstream registry (distribution v3
// in this process), the proxy binary, proxy A (a child process in front of
// the upstream) and the seeded fixtures.
type suite struct {
	dir      string // root of everything the suite writes; short (unix sockets)
	bin      string // the proxy binary
	upstream *embedded.Registry
	upHost   string // 127.0.0.1:port of the upstream
	proxy    *proxyProc
	fx       *fixtures
	home     string // HOME of every client command: nothing reaches the real one
	nproxy   atomic.Int32
}

var (
	setupOnce sync.Once
	theSuite  *suite
	setupErr  error
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if theSuite != nil {
		theSuite.close()
	}
	stopAll()
	os.Exit(code)
}

// shared returns the suite, setting it up on first use: a run that
// selects no e2e test (go test -run X ./...) builds and starts nothing.
func shared(t *testing.T) *suite {
	t.Helper()
	if testing.Short() && !inCI() {
		t.Skip("e2e: skipped with -short")
	}
	setupOnce.Do(func() {
		start := time.Now()
		theSuite, setupErr = setup()
		if setupErr == nil {
			fmt.Fprintf(os.Stderr, "e2e: setup (build proxy, start upstream and proxy, seed %d repositories) took %s\n", len(clientRepos), time.Since(start).Round(time.Millisecond))
		}
	})
	if setupErr != nil {
		t.Fatalf("e2e setup: %v", setupErr)
	}
	return theSuite
}

func setup() (*suite, error) {
	// Unix socket paths must stay under 108 bytes: keep the root short
	// even when TMPDIR is long.
	base := os.TempDir()
	if len(base) > 40 {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "mfe2e-")
	if err != nil {
		return nil, err
	}
	s := &suite{dir: dir, home: filepath.Join(dir, "home")}
	if err := os.MkdirAll(s.home, 0o700); err != nil {
		return s, err
	}

	var wg sync.WaitGroup
	var buildErr error
	wg.Go(func() { buildErr = s.buildProxy() })

	s.upstream, err = embedded.Start(context.Background(), embedded.Options{Dir: filepath.Join(dir, "upstream")})
	if err != nil {
		wg.Wait()
		return s, fmt.Errorf("starting the upstream: %w", err)
	}
	s.upHost = strings.TrimPrefix(s.upstream.URL, "http://")
	s.fx, err = newFixtures()
	if err == nil {
		err = s.fx.seed(s.upHost, clientRepos)
	}
	wg.Wait()
	if err := errors.Join(err, buildErr); err != nil {
		return s, err
	}
	s.proxy, err = s.startProxy("proxy-a")
	return s, err
}

// buildProxy builds the real binary users run, once per test run; or
// takes a prebuilt one from MANIFOLD_E2E_PROXY_BIN (a release candidate,
// an older build to compare with).
func (s *suite) buildProxy() error {
	if b := os.Getenv("MANIFOLD_E2E_PROXY_BIN"); b != "" {
		s.bin = b
		_, err := os.Stat(b)
		return err
	}
	s.bin = filepath.Join(s.dir, "proxy")
	cmd := exec.Command("go", "build", "-o", s.bin, "github.com/manifold-proxy/manifold/cmd/proxy")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/proxy: %w\n%s", err, out)
	}
	return nil
}

func (s *suite) close() {
	stopAll()
	if s.upstream != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = s.upstream.Close(ctx)
		cancel()
	}
	unmountUnder(s.dir)
	if os.Getenv("MANIFOLD_E2E_KEEP") != "" {
		fmt.Fprintln(os.Stderr, "e2e: kept", s.dir)
		return
	}
	if err := os.RemoveAll(s.dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: cleanup:", err)
	}
}

// tempDir is a fresh directory under the suite's short root, removed when
// the test ends (after its processes are stopped: cleanups run last-in
// first-out, so create it before starting them).
func (s *suite) tempDir(t *testing.T, name string) string {
	t.Helper()
	d, err := os.MkdirTemp(s.dir, name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unmountUnder(d)
		if os.Getenv("MANIFOLD_E2E_KEEP") == "" {
			_ = os.RemoveAll(d)
		}
	})
	return d
}

// env is the environment of client commands: the test's, without proxy
// settings (all traffic stays on loopback) and with HOME in a temp dir, so
// no client writes to the real home directory. extra entries win.
func (s *suite) env(extra ...string) []string {
	drop := map[string]bool{"HOME": true}
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "FTP_PROXY"} {
		drop[k], drop[strings.ToLower(k)] = true, true
	}
	for _, e := range extra {
		k, _, _ := strings.Cut(e, "=")
		drop[k] = true
	}
	var env []string
	for _, e := range os.Environ() {
		k, _, _ := strings.Cut(e, "=")
		if !drop[k] && !strings.HasPrefix(k, "MANIFOLD_") && !strings.HasPrefix(k, "XDG_") {
			env = append(env, e)
		}
	}
	path := os.Getenv("PATH")
	for _, d := range toolDirs() {
		path += ":" + d
	}
	env = append(env, "HOME="+s.home, "PATH="+path,
		"XDG_CONFIG_HOME="+filepath.Join(s.home, ".config"),
		"XDG_DATA_HOME="+filepath.Join(s.home, ".local/share"),
		"XDG_CACHE_HOME="+filepath.Join(s.home, ".cache"))
	return append(env, extra...)
}

// proxyProc is a running `proxy serve` child process.
type proxyProc struct {
	*proc
	host string // 127.0.0.1:port
}

// startProxy starts `proxy serve` in front of the upstream, on a free
// loopback port, logging requests as JSON lines to its log file.
func (s *suite) startProxy(name string) (*proxyProc, error) {
	return s.startProxyOn(name, s.upstream.URL)
}

// startProxyOn starts `proxy serve` in front of upstreamURL with extra
// arguments, on a free loopback port.
func (s *suite) startProxyOn(name, upstreamURL string, extra ...string) (*proxyProc, error) {
	return s.startProxyWith(name, func(_, host string) ([]string, error) {
		return append([]string{"serve", "--listen", host, "--upstream", upstreamURL, "--log-level", "info"}, extra...), nil
	}, func(host string) bool {
		resp, err := http.Get("http://" + host + "/v2/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// startProxyWith starts `proxy <args(workdir, host)>` on a free loopback
// port and waits until ready(host). (A port taken by someone else between
// picking and listening makes the proxy exit; it is then started again on
// another port.)
func (s *suite) startProxyWith(name string, args func(wd, host string) ([]string, error), ready func(host string) bool) (*proxyProc, error) {
	var err error
	for range 3 {
		var px *proxyProc
		if px, err = s.tryStartProxy(name, args, ready); err == nil {
			return px, nil
		}
	}
	return nil, err
}

func (s *suite) tryStartProxy(name string, args func(wd, host string) ([]string, error), ready func(host string) bool) (*proxyProc, error) {
	n := s.nproxy.Add(1)
	wd := filepath.Join(s.dir, fmt.Sprintf("%s-%d", name, n))
	if err := os.MkdirAll(wd, 0o755); err != nil {
		return nil, err
	}
	host, err := freeAddr()
	if err != nil {
		return nil, err
	}
	argv, err := args(wd, host)
	if err != nil {
		return nil, err
	}
	p, err := startProc(name, filepath.Join(wd, "proxy.log"), s.env("MANIFOLD_LOG_FORMAT=json"), wd, s.bin, argv...)
	if err != nil {
		return nil, err
	}
	err = waitFor(p, 30*time.Second, func() bool {
		return !p.exited() && ready(host) // waitFor reports an exit
	})
	if err != nil {
		_ = p.stop(stopGrace)
		return nil, err
	}
	return &proxyProc{proc: p, host: host}, nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startProxy starts another proxy process for one test: "another
// replica", which has never served anything.
func (s *suite) startTestProxy(t *testing.T, name string) *proxyProc {
	t.Helper()
	p, err := s.startProxy(name)
	if err != nil {
		t.Fatal(err)
	}
	stopInCleanup(t, p.proc)
	return p
}

// logLine is one JSON log line of the proxy.
type logLine struct {
	Msg    string `json:"msg"`
	Method string `json:"method"`
	Path   string `json:"path"`
	Status int    `json:"status"`
	Proto  string `json:"proto"`
	NS     string `json:"ns"`
}

func logLines(path string) []logLine {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []logLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			out = append(out, l)
		}
	}
	return out
}

// requests returns the requests the proxy logged so far.
func (p *proxyProc) requests() []logLine {
	var out []logLine
	for _, l := range logLines(p.log) {
		if l.Msg == "request" {
			out = append(out, l)
		}
	}
	return out
}

// unmountUnder unmounts whatever is still mounted below dir (a ctr image
// mount left by a failed test), deepest first.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var targets []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			targets = append(targets, f[4])
		}
	}
	for i := len(targets) - 1; i >= 0; i-- {
		_ = exec.Command("umount", "-l", targets[i]).Run()
	}
}
