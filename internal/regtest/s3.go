package regtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
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
	cmd                  *exec.Cmd
}

// StartS3 starts versitygw until the test ends. Without it the test is
// skipped, except under CI=true (.ci/install-deps installs it).
func StartS3(t testing.TB) *S3Server {
	t.Helper()
	bin, err := exec.LookPath("versitygw")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("versitygw not installed (.ci/install-deps installs it)")
		}
		t.Skip("versitygw not installed: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0 (or .ci/install-deps)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	root := t.TempDir()
	s := &S3Server{Endpoint: "http://" + addr, Bucket: "manifold", AccessKey: "manifold-test", SecretKey: "manifold-test-secret"}
	if err := os.Mkdir(filepath.Join(root, s.Bucket), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--port", addr, "posix", root)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.cmd = cmd
	t.Cleanup(s.Stop)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return s
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("versitygw did not listen on %s", addr)
	return nil
}

// Parameters are the s3 storage driver's parameters for this server, as
// distribution documents them.
func (s *S3Server) Parameters(rootdirectory string) map[string]any {
	return map[string]any{
		"bucket": s.Bucket, "region": "us-east-1", "regionendpoint": s.Endpoint, "forcepathstyle": true,
		"accesskey": s.AccessKey, "secretkey": s.SecretKey, "secure": false, "rootdirectory": rootdirectory,
	}
}

// Stop ends the server (by its PID); a second call does nothing.
func (s *S3Server) Stop() {
	if s.cmd.Process == nil || s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// YAML is the store parameters as a YAML mapping (indented by indent).
func (s *S3Server) YAML(indent, rootdirectory string) string {
	return fmt.Sprintf("%sbucket: %s\n%sregion: us-east-1\n%sregionendpoint: %s\n%sforcepathstyle: true\n%saccesskey: %s\n%ssecretkey: %s\n%ssecure: false\n%srootdirectory: %s\n",
		indent, s.Bucket, indent, indent, s.Endpoint, indent, indent, s.AccessKey, indent, s.SecretKey, indent, indent, rootdirectory)
}
