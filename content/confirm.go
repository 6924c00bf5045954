package content

import (
	"context"
	"errors"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/manifold-proxy/manifold/internal/lru"
	"github.com/manifold-proxy/manifold/store"
)

// A confirmation records that an upstream said a repository holds a
// digest: its answer to a GET or HEAD of that repository's blob or
// manifest. Content is stored once per digest; it is served through a
// repository only with a confirmation for that repository, which the
// proxy obtains from the upstream when there is none. Confirmations live
// on the driver (so a restart keeps them) and, the recently used ones, in
// memory.
type confKey struct {
	kind Kind
	key  store.Key
}

// cost of a confirmation in memory: the key's strings and some overhead.
func (k confKey) cost() int64 {
	return int64(len(k.key.Registry) + len(k.key.Repository) + len(k.key.Digest.Hex) + 64)
}

// markerPath is where the confirmation k lives on the driver, or "" when
// its names cannot be written there safely.
func markerPath(k confKey) string {
	if _, err := hasher(k.key.Digest); err != nil || !safeRepository(k.key.Repository) {
		return ""
	}
	return repositoryPath(k.key.Registry, k.key.Repository) + "/_" + k.kind.dir() + "/" + k.key.Digest.Algorithm + "/" + k.key.Digest.Hex
}

func repositoryPath(registry, repo string) string {
	return root + "/repositories/" + hostComponent(registry) + "/" + repo
}

// hostComponent is host[:port] as one path component of the characters
// storage drivers accept ([A-Za-z0-9._-]).
func hostComponent(host string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, host)
}

// safeRepository accepts repository names whose components are made of
// [a-z0-9._-] and do not start with '_' (the distribution grammar), so a
// name can neither leave its directory nor collide with _blobs/_manifests.
func safeRepository(repo string) bool {
	if repo == "" {
		return false
	}
	for _, c := range strings.Split(repo, "/") {
		if c == "" || c == "." || c == ".." || c[0] == '_' {
			return false
		}
		for _, r := range c {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
				return false
			}
		}
	}
	return true
}

// Confirmed reports whether the upstream said key's repository holds
// key's digest (of kind).
func (c *Cache) Confirmed(ctx context.Context, kind Kind, key store.Key) bool {
	k := confKey{kind, key}
	p := markerPath(k)
	if p == "" {
		return false
	}
	if _, ok := c.confirmations().Get(k); ok {
		return true
	}
	if _, err := c.d.Stat(ctx, p); err != nil {
		c.lookupFailed(ctx, err)
		return false
	}
	c.confirmations().Add(k, struct{}{}, k.cost())
	return true
}

// Confirm records that the upstream said key's repository holds key's
// digest. A failure to write it is logged: the next request asks the
// upstream again.
func (c *Cache) Confirm(ctx context.Context, kind Kind, key store.Key) {
	k := confKey{kind, key}
	p := markerPath(k)
	if p == "" || c.confirmations().Contains(k) {
		return
	}
	c.confirmations().Add(k, struct{}{}, k.cost())
	if err := c.d.PutContent(ctx, p, nil); err != nil {
		c.Stats.WriteErrors.Add(1)
		c.log.Warn("content cache: recording a confirmation failed", "repository", key.Repository, "digest", key.Digest.String(), "error", err)
	}
}

// Unconfirm forgets a confirmation (a delete through the proxy).
func (c *Cache) Unconfirm(ctx context.Context, kind Kind, key store.Key) error {
	k := confKey{kind, key}
	p := markerPath(k)
	if p == "" {
		return nil
	}
	c.confirmations().Remove(k)
	return c.deleteObject(ctx, p)
}

// PurgeRepository forgets every confirmation of repo on registry: nothing
// stored is served through it until the upstream confirms it again. The
// content stays for the other repositories that have it.
func (c *Cache) PurgeRepository(ctx context.Context, registry, repo string) error {
	if !safeRepository(repo) {
		return nil
	}
	dir := repositoryPath(registry, repo)
	err := errors.Join(c.deleteObject(ctx, dir+"/_"+Blob.dir()), c.deleteObject(ctx, dir+"/_"+Manifest.dir()))
	c.resetConfirmations()
	return err
}

// PurgeDigest drops digest d: its content (blob and manifest) and every
// repository's confirmation of it.
func (c *Cache) PurgeDigest(ctx context.Context, d v1.Hash) error {
	if _, err := hasher(d); err != nil {
		return nil
	}
	err := errors.Join(c.Delete(ctx, Blob, d), c.Delete(ctx, Manifest, d),
		c.deleteMarkers(ctx, root+"/repositories", d, 0))
	c.resetConfirmations()
	return err
}

// maxRepositoryDepth bounds the walk of deleteMarkers: a host directory,
// then repository components (distribution limits names to 255 bytes).
const maxRepositoryDepth = 130

// deleteMarkers deletes d's confirmations under dir, listing only
// repository directories (not the confirmations themselves).
func (c *Cache) deleteMarkers(ctx context.Context, dir string, d v1.Hash, depth int) error {
	children, err := c.d.List(ctx, dir)
	if notFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, ch := range children {
		switch path.Base(ch) {
		case "_" + Blob.dir(), "_" + Manifest.dir():
			errs = append(errs, c.deleteObject(ctx, ch+"/"+d.Algorithm+"/"+d.Hex))
		default:
			if depth < maxRepositoryDepth {
				errs = append(errs, c.deleteMarkers(ctx, ch, d, depth+1))
			}
		}
	}
	return errors.Join(errs...)
}

func (c *Cache) confirmations() *lru.Sized[confKey, struct{}] { return c.confirmed.Load() }

// resetConfirmations drops the confirmations in memory after a purge
// removed some from the driver; the others are read back when needed.
func (c *Cache) resetConfirmations() {
	c.confirmed.Store(lru.New[confKey, struct{}](c.o.ConfirmationBytes, nil))
}
