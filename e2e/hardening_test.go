package e2e_test

import (
	"fmt"
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
	host, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	p, err := startProc("h2", filepath.Join(wd, "proxy.log"), s.env(), wd, s.bin,
		"serve", "--listen", host, "--data-dir", filepath.Join(wd, "data"))
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
