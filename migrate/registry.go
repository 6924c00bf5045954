package migrate

import (
	"context"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/manifold-proxy/manifold/upstream"
)

// The writes migrate makes go through go-containerregistry's remote
// package on the client's authenticated transport: remote.Put of the exact
// index bytes, remote.Delete of a tag; read-backs are the client's GetTag,
// which checks the digest the registry reports. The children of the index
// are the member images, already in the repository, so nothing else is
// uploaded.

// rawManifest is manifest bytes with their media type, as remote.Put
// takes them (a remote.Taggable with a MediaType).
type rawManifest struct {
	bytes     []byte
	mediaType types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.bytes, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mediaType, nil }

// reference is ref (a tag or a digest) in the repository.
func (m *Migrator) reference(ref string) name.Reference {
	repo := m.o.Client.Registry().Repo(m.o.Repository)
	if _, err := v1.NewHash(ref); err == nil {
		return repo.Digest(ref)
	}
	return repo.Tag(ref)
}

// remote is the options of a remote call with actions on the repository.
func (m *Migrator) remote(ctx context.Context, actions ...string) ([]remote.Option, error) {
	rt, err := m.o.Client.Transport(ctx, upstream.Scope(m.o.Repository, actions...))
	if err != nil {
		return nil, err
	}
	return []remote.Option{remote.WithTransport(rt), remote.WithContext(ctx)}, nil
}

// put writes manifest bytes b of media type mt under ref (a tag or a
// digest).
func (m *Migrator) put(ctx context.Context, ref string, mt types.MediaType, b []byte) error {
	opts, err := m.remote(ctx, "pull", "push")
	if err != nil {
		return err
	}
	return remote.Put(m.reference(ref), rawManifest{b, mt}, opts...)
}

// deleteTag untags tag. Never called with a digest: deleting by digest
// deletes the manifest itself.
func (m *Migrator) deleteTag(ctx context.Context, tag string) error {
	opts, err := m.remote(ctx, "pull", "push", "delete")
	if err != nil {
		return err
	}
	return remote.Delete(m.reference(tag), opts...)
}

// registryError turns the registry's answer to a request about the
// repository into one clear line: what was being done, and why it failed
// when the status says (credentials, permissions).
func (m *Migrator) registryError(what string, err error) error {
	host := m.o.Client.Host()
	switch upstream.Status(err) {
	case http.StatusUnauthorized:
		return fmt.Errorf("%s: unauthorized: no valid credentials for %s (run docker login %s, or configure a credential helper)", m.name, host, host)
	case http.StatusForbidden:
		return fmt.Errorf("%s: access denied for these credentials", m.name)
	}
	return fmt.Errorf("%s %s: %w", what, m.name, err)
}
