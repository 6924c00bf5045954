package regtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// HAProxy is a real HAProxy (Debian's) load-balancing HTTP over backends
// for one test: round robin over a new server connection per request
// (option http-server-close: the client's connection is kept alive, the
// server's closed after each answer), so that consecutive requests go to
// consecutive backends even from a client that keeps its connection.
type HAProxy struct {
	// Addr is the frontend's 127.0.0.1:port.
	Addr string
	// Config is the path of the haproxy.cfg it runs, Log of its output.
	Config, Log string
	*daemon
}

// StartHAProxy starts haproxy in the foreground in front of backends
// (host:port each, named s1..sN in its configuration) until the test ends.
// Without haproxy on PATH the test is skipped, except under CI=true, where
// it fails (.ci/install-deps installs it).
func StartHAProxy(t testing.TB, backends []string) *HAProxy {
	t.Helper()
	if len(backends) == 0 {
		t.Fatal("StartHAProxy: no backends")
	}
	bin := tool(t, "haproxy", "apt-get install haproxy")
	dir := t.TempDir()
	h := &HAProxy{Addr: FreeAddr(t), Config: filepath.Join(dir, "haproxy.cfg"), Log: filepath.Join(dir, "haproxy.log")}
	if err := os.WriteFile(h.Config, []byte(haproxyConfig(h.Addr, backends)), 0o644); err != nil {
		t.Fatal(err)
	}
	lf, err := os.Create(h.Log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lf.Close() })
	// -db: in the foreground, so that the test holds its PID.
	cmd := exec.Command(bin, "-f", h.Config, "-db")
	cmd.Stdout, cmd.Stderr = lf, lf
	h.daemon = startDaemon(t, cmd, h.Addr, 10*time.Second)
	return h
}

// haproxyConfig is the configuration of StartHAProxy. No health checks:
// a test that stops a backend wants to see what the clients see, and
// round robin over the backends it configured.
func haproxyConfig(addr string, backends []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
    maxconn 4096

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 30s

frontend fe
    bind %s
    default_backend replicas

backend replicas
    balance roundrobin
    option http-server-close
`, addr)
	for i, s := range backends {
		fmt.Fprintf(&b, "    server s%d %s\n", i+1, s)
	}
	return b.String()
}
