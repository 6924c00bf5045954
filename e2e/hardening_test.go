package e2e_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/manifold-proxy/manifold/internal/regtest"
)

// TestH2_EmbeddedRegistryUnreachable: the embedded registry listened on an
// unauthenticated loopback port, printed in the log and visible on
// /metrics, so any local process could read it and push into repositories
// the access rules reserve. `proxy serve` with no upstream now listens on
// exactly one socket, its own, and names no other address.
func TestH2_EmbeddedRegistryUnreachable(t *testing.T) {
	s := shared(t)
	wd := s.tempDir(t, "h2")
	p, host := startServe(t, s, wd, "--data-dir", filepath.Join(wd, "data"))
	ports := listeningPorts(t, p.pid())
	_, port, _ := strings.Cut(host, ":")
	if len(ports) != 1 || ports[0] != port {
		t.Errorf("the proxy process listens on ports %v, want only its own %s", ports, port)
	}
	_, metrics := regtest.Get(t, http.MethodGet, "http://"+host+"/metrics")
	logs, _ := os.ReadFile(filepath.Join(wd, "proxy.log"))
	addr := regexp.MustCompile(`127\.0\.0\.1:(\d+)`)
	for what, text := range map[string]string{"/metrics": string(metrics), "the log": string(logs)} {
		for _, m := range addr.FindAllStringSubmatch(text, -1) {
			if m[1] != port {
				t.Errorf("%s names the internal address %s", what, m[0])
			}
		}
	}
}

// listeningPorts lists the TCP ports pid listens on: its socket inodes
// (/proc/pid/fd) matched against the listening sockets of /proc/net/tcp*.
func listeningPorts(t *testing.T, pid int) []string {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	var ports []string
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] { // 0A: LISTEN
				continue
			}
			_, hexPort, _ := strings.Cut(f[1], ":")
			n, _ := strconv.ParseUint(hexPort, 16, 16)
			ports = append(ports, strconv.FormatUint(n, 10))
		}
	}
	return ports
}

// TestM1_StalledUploads: request bodies up to 4 MiB were buffered before
// the upstream was contacted and nothing timed a stalled body out: 50
// stalled uploads held +281 MB for 60 s and more. Bodies stream now, and a
// body that makes no progress for server.progressTimeout ends its request.
func TestM1_StalledUploads(t *testing.T) {
	s := shared(t)
	wd := s.tempDir(t, "m1")
	cfg := filepath.Join(wd, "config.yaml")
	if err := os.WriteFile(cfg, []byte("server:\n  progressTimeout: 2s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, host := startServe(t, s, wd, "--config", cfg, "--upstream", s.upstream.URL)
	before := rssKiB(t, p.pid())
	const uploads = 50
	conns := make([]net.Conn, 0, uploads)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range uploads {
		resp, err := http.Post("http://"+host+"/v2/e2e/stalled/blobs/uploads/", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusAccepted || loc == "" {
			t.Fatalf("starting an upload: %d", resp.StatusCode)
		}
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		// Announce 4 MiB, send 1 KiB, then stall.
		fmt.Fprintf(c, "PATCH %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", loc, host, 4<<20)
		if _, err := c.Write(make([]byte, 1024)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	during := rssKiB(t, p.pid())
	t.Logf("proxy RSS: %d KiB before, %d KiB with %d stalled uploads", before, during, uploads)
	if grew := during - before; grew > 32<<10 {
		t.Errorf("%d stalled uploads grew the proxy by %d KiB", uploads, grew)
	}
	// Each stalled request ends after the progress timeout: the proxy
	// answers or closes, the client's read returns.
	start := time.Now()
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
		if _, err := c.Read(make([]byte, 512)); err != nil && strings.Contains(err.Error(), "timeout") {
			t.Fatalf("stalled upload %d still open after %s", i, time.Since(start))
		}
	}
	t.Logf("all %d stalled uploads ended %s after they stalled", uploads, time.Since(start)+500*time.Millisecond)
}

// rssKiB is the resident set of pid.
func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// startServe runs `proxy serve --listen <free port> args...` in wd until
// the test ends, and waits until it answers /v2/.
func startServe(t *testing.T, s *suite, wd string, args ...string) (*proc, string) {
	t.Helper()
	host, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	p, err := startProc(filepath.Base(wd), filepath.Join(wd, "proxy.log"), s.env(), wd, s.bin, append([]string{"serve", "--listen", host}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	stopInCleanup(t, p)
	if err := waitFor(p, 30*time.Second, func() bool {
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	}); err != nil {
		t.Fatal(err)
	}
	return p, host
}
