package migrate

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/manifold-proxy/manifold/upstream"
)

// The writes migrate makes are plain distribution-spec requests on the
// client's authenticated transport: PUT of the exact index bytes ("Pushing
// manifests"), GET to read them back, DELETE by tag ("Deleting tags"). The
// children of the index are the member images, already in the repository,
// so nothing else is uploaded.

func (m *Migrator) do(ctx context.Context, method, ref string, scope []string, body []byte, header http.Header) (*http.Response, error) {
	rt, err := m.o.Client.Transport(ctx, upstream.Scope(m.o.Repository, scope...))
	if err != nil {
		return nil, err
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	u := m.o.Client.URL("/v2/"+m.o.Repository+"/manifests/"+ref, "")
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	return (&http.Client{Transport: rt}).Do(req)
}

// put writes manifest bytes b of media type mt under ref (a tag or a
// digest) and checks the digest the registry reports.
func (m *Migrator) put(ctx context.Context, ref string, mt types.MediaType, b []byte) error {
	resp, err := m.do(ctx, http.MethodPut, ref, []string{"pull", "push"}, b, http.Header{"Content-Type": {string(mt)}})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK, http.StatusCreated, http.StatusAccepted); err != nil {
		return err
	}
	if got, want := resp.Header.Get("Docker-Content-Digest"), sha256Hash(b).String(); got != "" && got != want {
		return fmt.Errorf("the registry stored %s under %s, want %s", got, ref, want)
	}
	return nil
}

// get reads the manifest ref with Accept mt: its bytes, content type and
// the digest the registry reports ("" when it sends none).
func (m *Migrator) get(ctx context.Context, ref string, mt types.MediaType) ([]byte, types.MediaType, string, error) {
	resp, err := m.do(ctx, http.MethodGet, ref, []string{"pull"}, nil, http.Header{"Accept": {string(mt)}})
	if err != nil {
		return nil, "", "", err
	}
	defer resp.Body.Close()
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		return nil, "", "", err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, m.o.MaxManifestBytes+1))
	if err != nil {
		return nil, "", "", err
	}
	if int64(len(b)) > m.o.MaxManifestBytes {
		return nil, "", "", fmt.Errorf("manifest %s is over the %d-byte limit", ref, m.o.MaxManifestBytes)
	}
	return b, types.MediaType(resp.Header.Get("Content-Type")), resp.Header.Get("Docker-Content-Digest"), nil
}

// deleteTag untags tag (DELETE /v2/<name>/manifests/<tag>). Never called
// with a digest: deleting by digest deletes the manifest itself.
func (m *Migrator) deleteTag(ctx context.Context, tag string) error {
	resp, err := m.do(ctx, http.MethodDelete, tag, []string{"pull", "push", "delete"}, nil, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return transport.CheckError(resp, http.StatusOK, http.StatusAccepted, http.StatusNoContent)
}

// registryError turns the registry's answers to a request about the
// repository into one clear line.
func (m *Migrator) registryError(what string, err error) error {
	host := m.o.Client.Host()
	switch upstream.Status(err) {
	case http.StatusNotFound:
		if what == "listing tags of" {
			return fmt.Errorf("%s: repository not found", m.name)
		}
	case http.StatusUnauthorized:
		return fmt.Errorf("%s: unauthorized: no valid credentials for %s (run docker login %s, or configure a credential helper)", m.name, host, host)
	case http.StatusForbidden:
		return fmt.Errorf("%s: access denied for these credentials", m.name)
	}
	return fmt.Errorf("%s %s: %w", what, m.name, err)
}
