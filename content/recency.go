package content

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

const (
	recencyPath = root + "/recency"
	uploadsPath = root + "/_uploads"
	// staleUploadAge: an upload this old belongs to a process that died
	// (a live one finishes or cancels its fills); younger ones may be
	// another replica's on shared storage.
	staleUploadAge = time.Hour
)

type stored struct {
	k    entryKey
	size int64
	mod  time.Time
}

// rebuild fills the index from the driver: the entries the last Close
// listed, in its order, then the others by modification time.
func (c *Cache) rebuild(ctx context.Context) error {
	var all []stored
	for _, kind := range []Kind{Blob, Manifest} {
		err := c.d.Walk(ctx, root+"/"+kind.dir(), func(fi storagedriver.FileInfo) error {
			if k, ok := parseDataPath(kind, fi.Path()); ok && !fi.IsDir() {
				all = append(all, stored{k, fi.Size(), fi.ModTime()})
			}
			// Anything else (a driver's temporary file) is not content.
			return nil
		})
		if err != nil && !notFound(err) {
			return fmt.Errorf("content cache (%s): reading what is stored: %w", c.d.Name(), err)
		}
	}
	rank := c.loadRecency(ctx)
	sort.SliceStable(all, func(i, j int) bool {
		ri, iok := rank[all[i].k]
		rj, jok := rank[all[j].k]
		switch {
		case iok && jok:
			return ri < rj
		case iok != jok:
			return iok
		}
		return all[i].mod.Before(all[j].mod)
	})
	for _, s := range all {
		c.index.Add(s.k, s.size, s.size)
	}
	c.deleteEvicted()
	return nil
}

// parseDataPath is the inverse of dataPath.
func parseDataPath(kind Kind, p string) (entryKey, bool) {
	rest, ok := strings.CutPrefix(p, root+"/"+kind.dir()+"/")
	if !ok {
		return entryKey{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return entryKey{}, false
	}
	d := v1.Hash{Algorithm: parts[0], Hex: parts[2]}
	if _, err := hasher(d); err != nil || parts[1] != d.Hex[:2] || strings.Trim(d.Hex, "0123456789abcdef") != "" {
		return entryKey{}, false
	}
	return entryKey{kind, d}, true
}

// loadRecency reads the order the last Close wrote: rank by entry.
func (c *Cache) loadRecency(ctx context.Context) map[entryKey]int {
	b, err := c.d.GetContent(ctx, recencyPath)
	if err != nil {
		return nil
	}
	rank := map[entryKey]int{}
	for i, line := range strings.Split(string(b), "\n") {
		kind, dgst, ok := strings.Cut(line, " ")
		d, err := v1.NewHash(dgst)
		if !ok || err != nil {
			continue
		}
		k := entryKey{Blob, d}
		if kind == Manifest.String() {
			k.kind = Manifest
		}
		rank[k] = i
	}
	return rank
}

// saveRecency writes the index's order, oldest first.
func (c *Cache) saveRecency(ctx context.Context) error {
	var b strings.Builder
	for _, k := range c.index.Keys() {
		b.WriteString(k.kind.String() + " " + k.digest.String() + "\n")
	}
	if err := c.d.PutContent(ctx, recencyPath, []byte(b.String())); err != nil {
		return fmt.Errorf("content cache (%s): writing the recency list: %w", c.d.Name(), err)
	}
	return nil
}

// removeStaleUploads deletes fills that a dead process left.
func (c *Cache) removeStaleUploads(ctx context.Context) error {
	names, err := c.d.List(ctx, uploadsPath)
	if notFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("content cache (%s): listing uploads: %w", c.d.Name(), err)
	}
	for _, n := range names {
		fi, err := c.d.Stat(ctx, n)
		if err != nil || time.Since(fi.ModTime()) < staleUploadAge {
			continue
		}
		if err := c.deleteObject(ctx, n); err != nil {
			return err
		}
	}
	return nil
}
