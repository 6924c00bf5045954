package e2e_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// containerdDaemon is a private containerd: its own config, root, state and
// sockets under dir, CRI off, stopped by PID when the test ends.
type containerdDaemon struct {
	sock string
	ctr  string
	env  []string
}

func startContainerd(t *testing.T, s *suite, dir string) *containerdDaemon {
	t.Helper()
	return startContainerdWith(t, s, dir, "")
}

// startContainerdWith starts a containerd with extra configuration
// appended to its config.toml.
func startContainerdWith(t *testing.T, s *suite, dir, extra string) *containerdDaemon {
	t.Helper()
	bin := requireTool(t, "containerd", hintContainerd)
	ctr := requireTool(t, "ctr", hintContainerd)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	d := &containerdDaemon{sock: filepath.Join(dir, "c.sock"), ctr: ctr, env: s.env()}
	// The opt plugin's path is set so that nothing lands in /opt/containerd.
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
[debug]
  address = %q
[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), d.sock, d.sock+".ttrpc", filepath.Join(dir, "debug.sock"), filepath.Join(dir, "opt")) + extra
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := startProc("containerd", filepath.Join(dir, "containerd.log"), d.env, dir, bin, "--config", cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	stopInCleanup(t, p)
	if err := waitFor(p, 30*time.Second, func() bool {
		_, _, err := d.command("version").output()
		return err == nil
	}); err != nil {
		t.Fatalf("containerd: %v", err)
	}
	return d
}

// command is `ctr --address <sock> args...`.
func (d *containerdDaemon) command(args ...string) command {
	return command{bin: d.ctr, args: append([]string{"--address", d.sock}, args...), env: d.env}
}

// dockerDaemon is a private dockerd on vfs storage with no networking
// set-up, using the given containerd (so it starts no containerd of its
// own, which would write /opt/containerd).
type dockerDaemon struct {
	sock string
	cli  string
	env  []string
}

// dockerdOpts change a private dockerd.
type dockerdOpts struct {
	// daemonJSON is its configuration file. Default "{}".
	daemonJSON string
	// etcDocker is mounted over /etc/docker, in a mount namespace of the
	// daemon's own, so that /etc/docker/certs.d (whose path dockerd fixes)
	// is the test's. Default: the daemon sees the host's /etc/docker.
	etcDocker string
	// env is added to the daemon's environment.
	env []string
}

func startDockerd(t *testing.T, s *suite, dir string, containerd *containerdDaemon, opts ...dockerdOpts) *dockerDaemon {
	t.Helper()
	bin := requireTool(t, "dockerd", hintDocker)
	var o dockerdOpts
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.daemonJSON == "" {
		o.daemonJSON = "{}"
	}
	d := &dockerDaemon{sock: filepath.Join(dir, "d.sock"), cli: dockerCLI(t)}
	cliConfig := filepath.Join(dir, "cli")
	for _, dd := range []string{dir, cliConfig} {
		if err := os.MkdirAll(dd, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(cliConfig, "config.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), []byte(o.daemonJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	d.env = s.env("DOCKER_CONFIG=" + cliConfig)
	var pre []string
	if o.etcDocker != "" {
		bin, pre = privateMount(t, o.etcDocker, "/etc/docker", bin)
	}
	p, err := startProc("dockerd", filepath.Join(dir, "dockerd.log"), append(d.env, o.env...), dir, bin, append(pre,
		"--config-file", filepath.Join(dir, "daemon.json"),
		"--containerd", containerd.sock,
		"--storage-driver=vfs",
		"--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false",
		"--bridge=none", "--userland-proxy=false",
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"),
		"--host", "unix://"+d.sock)...)
	if err != nil {
		t.Fatal(err)
	}
	stopInCleanup(t, p)
	if err := waitFor(p, 60*time.Second, func() bool {
		_, _, err := d.command("version").output()
		return err == nil
	}); err != nil {
		t.Fatalf("dockerd: %v", err)
	}
	return d
}

// privateMount runs bin in a mount namespace of its own where dir is
// mounted over target (which must exist): the process finds the test's
// files at a path it fixes, and the host's stay as they are. It returns
// the command to run and the arguments that go before bin's.
func privateMount(t *testing.T, dir, target, bin string) (string, []string) {
	t.Helper()
	unshare := requireTool(t, "unshare", hintUnshare)
	if fi, err := os.Stat(target); err != nil || !fi.IsDir() {
		skipOrFail(t, target+" does not exist on this host: there is nothing to mount the test's files over without creating it")
	}
	return unshare, []string{"--mount", "--propagation", "private", "sh", "-c", `mount --bind "$0" "$1" && shift && exec "$@"`, dir, target, bin}
}

// command is `docker -H unix://<sock> args...`.
func (d *dockerDaemon) command(args ...string) command {
	return command{bin: d.cli, args: append([]string{"-H", "unix://" + d.sock}, args...), env: d.env}
}

// dockerCLI is the docker CLI for daemon commands: Debian's 20.10, which
// matches its dockerd, else whatever docker is in PATH (a newer CLI
// negotiates the API version down).
func dockerCLI(t *testing.T) string {
	t.Helper()
	if fi, err := os.Stat("/usr/bin/docker"); err == nil && !fi.IsDir() {
		return "/usr/bin/docker"
	}
	return requireTool(t, "docker", hintDocker)
}
