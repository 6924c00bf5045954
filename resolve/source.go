package resolve

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Source reads one registry. upstream.Client implements it.
type Source interface {
	// Tags lists every tag of repo.
	Tags(ctx context.Context, repo string) ([]string, error)
	// Head resolves a tag or digest of repo to a descriptor.
	Head(ctx context.Context, repo, ref string) (v1.Descriptor, error)
	// Manifest fetches a manifest by digest, verified; limit caps its size.
	Manifest(ctx context.Context, repo string, dgst v1.Hash, limit int64) ([]byte, types.MediaType, error)
	// Blob fetches a small blob (a config) by digest, verified.
	Blob(ctx context.Context, repo string, dgst v1.Hash, limit int64) ([]byte, error)
}

// TagGetter is a Source that reads a manifest by tag in one request, and
// remembers the last descriptor of each tag. Cache implements it over an
// upstream.Client.
type TagGetter interface {
	// GetTag reads the manifest tag of repo: its descriptor and bytes,
	// verified against the digest the registry reports; limit caps its
	// size.
	GetTag(ctx context.Context, repo, tag string, limit int64) (v1.Descriptor, []byte, error)
	// LastHead is the last descriptor known for repo:tag, however old.
	LastHead(repo, tag string) (v1.Descriptor, bool)
}
