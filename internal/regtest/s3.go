package regtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// S3Server is a real S3-API server for one test: versitygw (Apache-2.0)
// on its posix backend, on a loopback port. Each subdirectory of its root
// is a bucket.
type S3Server struct {
	// Endpoint is http://127.0.0.1:port; Bucket exists.
	Endpoint, Bucket     string
	AccessKey, SecretKey string
	*daemon
}

// StartS3 starts versitygw until the test ends. Without it the test is
// skipped, except under CI=true (.ci/install-deps installs it).
func StartS3(t testing.TB) *S3Server {
	t.Helper()
	bin := tool(t, "versitygw", "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0")
	addr, root := FreeAddr(t), t.TempDir()
	s := &S3Server{Endpoint: "http://" + addr, Bucket: "manifold", AccessKey: "manifold-test", SecretKey: "manifold-test-secret"}
	if err := os.Mkdir(filepath.Join(root, s.Bucket), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--port", addr, "posix", root)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	s.daemon = startDaemon(t, cmd, addr, 15*time.Second)
	return s
}

// Parameters are the s3 storage driver's parameters for this server, as
// distribution documents them.
func (s *S3Server) Parameters(rootdirectory string) map[string]any {
	return map[string]any{
		"bucket": s.Bucket, "region": "us-east-1", "regionendpoint": s.Endpoint, "forcepathstyle": true,
		"accesskey": s.AccessKey, "secretkey": s.SecretKey, "secure": false, "rootdirectory": rootdirectory,
	}
}
