package regtest

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// RedisServer is a real redis-server (Debian's) started for one test, on a
// loopback port, persisting nothing.
type RedisServer struct {
	Addr string
	*daemon
}

// StartRedis starts redis-server until the test ends. Without redis-server
// on PATH the test is skipped, except under CI=true, where it fails
// (.ci/install-deps installs it).
func StartRedis(t testing.TB) *RedisServer {
	t.Helper()
	bin := tool(t, "redis-server", "apt-get install redis-server")
	addr := FreeAddr(t)
	_, port, _ := strings.Cut(addr, ":")
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	return &RedisServer{Addr: addr, daemon: startDaemon(t, cmd, addr, 10*time.Second)}
}
