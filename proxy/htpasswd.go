package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/registry/auth"
	"golang.org/x/crypto/bcrypt"
)

// EvenHtpasswd decorates distribution's htpasswd access controller so that
// a login with an unknown user name costs what a known one costs: the
// controller answers an unknown user at once and a known one after a
// bcrypt comparison, which told users apart by timing (4 ms against 83 ms).
// An unknown user's password is compared against a dummy hash of the cost
// the file's own hashes use. The file's user names are read again when it
// changes, as the controller reads it.
func EvenHtpasswd(ctl auth.AccessController, path string) (auth.AccessController, error) {
	e := &evenHtpasswd{inner: ctl, path: path}
	if err := e.reload(); err != nil {
		return nil, err
	}
	return e, nil
}

type evenHtpasswd struct {
	inner auth.AccessController
	path  string

	mu    sync.Mutex
	mtime time.Time
	users map[string]bool
	dummy []byte // a bcrypt hash of the file's cost
}

var _ auth.AccessController = (*evenHtpasswd)(nil)

func (e *evenHtpasswd) Authorized(r *http.Request, access ...auth.Access) (*auth.Grant, error) {
	if user, password, ok := r.BasicAuth(); ok {
		_ = e.reload() // a file that went away fails in the controller
		e.mu.Lock()
		known, dummy := e.users[user], e.dummy
		e.mu.Unlock()
		if !known {
			_ = bcrypt.CompareHashAndPassword(dummy, []byte(password))
		}
	}
	return e.inner.Authorized(r, access...)
}

// reload reads the user names and the hash cost when the file changed.
func (e *evenHtpasswd) reload() error {
	fi, err := os.Stat(e.path)
	if err != nil {
		return fmt.Errorf("htpasswd: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.users != nil && fi.ModTime().Equal(e.mtime) {
		return nil
	}
	b, err := os.ReadFile(e.path)
	if err != nil {
		return fmt.Errorf("htpasswd: %w", err)
	}
	users, cost := map[string]bool{}, bcrypt.DefaultCost
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, hash, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok || name == "" || strings.HasPrefix(name, "#") {
			continue
		}
		users[name] = true
		if c, err := bcrypt.Cost([]byte(hash)); err == nil {
			cost = c
		}
	}
	if e.dummy == nil || cost != costOf(e.dummy) {
		if e.dummy, err = bcrypt.GenerateFromPassword([]byte("manifold-dummy-password"), cost); err != nil {
			return fmt.Errorf("htpasswd: %w", err)
		}
	}
	e.users, e.mtime = users, fi.ModTime()
	return nil
}

func costOf(hash []byte) int {
	c, _ := bcrypt.Cost(hash)
	return c
}
