package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// stopGrace is how long a stopped process gets between SIGTERM and
// SIGKILL. dockerd needs about 3 s, containerd about 2 s.
const stopGrace = 20 * time.Second

// proc is a child process started by the suite. It is stopped by its PID
// only, never by name.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string // file holding its stdout and stderr
	done chan struct{}
	err  error // set when done is closed
	once sync.Once
}

// running holds every process started and not yet stopped, so that
// TestMain can stop what a test could not (setup failures, panics).
var running = struct {
	sync.Mutex
	m map[*proc]bool
}{m: map[*proc]bool{}}

// startProc starts bin with args, its output going to logPath. The child
// gets SIGTERM if the test binary dies (Pdeathsig) so that nothing outlives
// a crashed run.
func startProc(name, logPath string, env []string, dir, bin string, args ...string) (*proc, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env, cmd.Dir = env, dir
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	running.Lock()
	running.m[p] = true
	running.Unlock()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process, waits up to grace, then SIGKILLs it.
// It is safe to call more than once.
func (p *proc) stop(grace time.Duration) error {
	var err error
	p.once.Do(func() {
		defer func() {
			running.Lock()
			delete(running.m, p)
			running.Unlock()
		}()
		if p.exited() {
			return
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			return
		case <-time.After(grace):
		}
		_ = p.cmd.Process.Kill()
		<-p.done
		err = fmt.Errorf("%s (pid %d) ignored SIGTERM for %s and was killed", p.name, p.pid(), grace)
	})
	return err
}

// stopInCleanup stops p when the test ends, passed or failed, and shows
// the end of its log if the test failed.
func stopInCleanup(t *testing.T, p *proc) {
	t.Cleanup(func() {
		if err := p.stop(stopGrace); err != nil {
			t.Log(err)
		}
		if t.Failed() {
			t.Logf("last lines of %s's log (%s):\n%s", p.name, p.log, tail(p.log, 30))
		}
	})
}

// stopAll stops every process still running, in parallel.
func stopAll() {
	running.Lock()
	ps := make([]*proc, 0, len(running.m))
	for p := range running.m {
		ps = append(ps, p)
	}
	running.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() {
			if err := p.stop(stopGrace); err != nil {
				fmt.Fprintln(os.Stderr, "e2e:", err)
			}
		})
	}
	wg.Wait()
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return lastLines(string(b), n)
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitFor polls ok every 50 ms until it returns true, p exits, or the
// timeout passes.
func waitFor(p *proc, timeout time.Duration, ok func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if ok() {
			return nil
		}
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited (%v):\n%s", p.name, p.err, tail(p.log, 20))
		}
		if time.Now().After(deadline) {
			what := "condition"
			if p != nil {
				what = p.name + ":\n" + tail(p.log, 20)
			}
			return fmt.Errorf("not ready after %s: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// command is one client invocation.
type command struct {
	bin  string
	args []string
	env  []string
	dir  string
	// timeout; default 2 minutes.
	timeout time.Duration
}

// output runs c and returns its stdout; the error carries stderr.
func (c command) output() ([]byte, []byte, error) {
	timeout := c.timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, c.args...)
	cmd.Env, cmd.Dir = c.env, c.dir
	cmd.WaitDelay = 5 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timed out after %s: %w", timeout, err)
	}
	if err != nil {
		err = fmt.Errorf("%s: %w\nstderr: %s", c, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), stderr.Bytes(), err
}

func (c command) String() string {
	return strings.TrimSpace(c.bin + " " + strings.Join(c.args, " "))
}

// run runs c and fails the test if it fails; it returns stdout.
func run(t *testing.T, c command) []byte {
	t.Helper()
	out, _, err := c.output()
	if err != nil {
		t.Fatal(err)
	}
	return out
}
