package regtest

import (
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// The real servers the tests start (redis-server, versitygw, haproxy) are
// processes of the test's own: found on PATH, on a free loopback port,
// killed with the test process, stopped by PID when the test ends.

// tool is the path of bin. Without it the test is skipped, except under
// CI=true, where it fails: .ci/install-deps installs every tool the tests
// use, and install says how.
func tool(t testing.TB, bin, install string) string {
	t.Helper()
	path, err := exec.LookPath(bin)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed (.ci/install-deps installs it)", bin)
		}
		t.Skipf("%s not installed: %s (or .ci/install-deps)", bin, install)
	}
	return path
}

// FreeAddr is a loopback host:port nothing listens on (at the time asked).
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// daemon is a server process of the test's.
type daemon struct {
	cmd  *exec.Cmd
	addr string
	wait time.Duration
}

// startDaemon starts cmd until the test ends and waits up to wait for it
// to accept connections on addr.
func startDaemon(t testing.TB, cmd *exec.Cmd, addr string, wait time.Duration) *daemon {
	t.Helper()
	d := &daemon{cmd: cmd, addr: addr, wait: wait}
	t.Cleanup(d.Stop) // whichever process d runs by then
	d.launch(t)
	return d
}

func (d *daemon) launch(t testing.TB) {
	t.Helper()
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(d.wait)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", d.addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s did not listen on %s within %v", d.cmd.Path, d.addr, d.wait)
}

// Stop ends the server (by its PID: SIGTERM, then SIGKILL after 5 s); a
// second call does nothing.
func (d *daemon) Stop() {
	if d.cmd.Process == nil || d.cmd.ProcessState != nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = d.cmd.Process.Kill()
		<-done
	}
}

// Restart starts the server again, as it was started (same command, same
// port, same data), after Stop; it waits until it accepts connections.
func (d *daemon) Restart(t testing.TB) {
	t.Helper()
	d.Stop()
	cmd := exec.Command(d.cmd.Path, d.cmd.Args[1:]...)
	cmd.Env, cmd.Dir = d.cmd.Env, d.cmd.Dir
	d.cmd = cmd
	d.launch(t)
}
