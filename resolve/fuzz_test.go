package resolve_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/resolve"
)

// hostile is a Source whose every answer is attacker-chosen: the tag list,
// the media type, the manifest and the config bytes.
type hostile struct {
	tags      []string
	mediaType types.MediaType
	manifest  []byte
	config    []byte
}

func digestOf(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

func (h *hostile) Tags(context.Context, string) ([]string, error) { return h.tags, nil }
func (h *hostile) Head(context.Context, string, string) (v1.Descriptor, error) {
	return v1.Descriptor{MediaType: h.mediaType, Digest: digestOf(h.manifest), Size: int64(len(h.manifest))}, nil
}
func (h *hostile) Manifest(context.Context, string, v1.Hash, int64) ([]byte, types.MediaType, error) {
	return h.manifest, h.mediaType, nil
}
func (h *hostile) Blob(context.Context, string, v1.Hash, int64) ([]byte, error) { return h.config, nil }

// FuzzResolveHostileUpstream: whatever an upstream answers, resolution never
// panics, and an index it decides to serve is a valid index whose bytes
// hash to its digest.
func FuzzResolveHostileUpstream(f *testing.F) {
	img := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` + strings.Repeat("a", 64) + `","size":2},"layers":[]}`
	idx := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + strings.Repeat("b", 64) + `","size":3,"platform":{"os":"linux","architecture":"arm64"}}]}`
	f.Add("1.0-linux-amd64\n1.0-linux-arm64\n1.0", string(types.OCIManifestSchema1), img, `{"os":"linux","architecture":"amd64"}`)
	f.Add("1.0-linux-arm64", string(types.OCIImageIndex), idx, `{"os":"linux","architecture":"arm64","variant":"v8"}`)
	f.Add("1.0-linux-arm-v7", "", `{"manifests":null}`, `{"os":"linux","architecture":"arm","variant":"v9"}`)
	f.Add("1.0-windows-amd64", string(types.DockerManifestSchema2), `{"config":{}}`, `not json`)
	f.Fuzz(func(t *testing.T, tags, mediaType, manifest, config string) {
		if len(tags) > 1<<12 {
			return
		}
		src := &hostile{tags: strings.Split(tags, "\n"), mediaType: types.MediaType(mediaType), manifest: []byte(manifest), config: []byte(config)}
		r := resolve.New(src, resolve.Options{MaxManifestBytes: 1 << 16})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		g, err := r.Resolve(ctx, "app", "1.0", index.Rule{})
		if ctx.Err() != nil {
			t.Fatalf("resolution did not end: %v", err)
		}
		if err != nil || g.Outcome != resolve.Index {
			return
		}
		var m v1.IndexManifest
		if err := json.Unmarshal(g.Result.Bytes, &m); err != nil || len(m.Manifests) == 0 {
			t.Fatalf("served an invalid index %q: %v", g.Result.Bytes, err)
		}
		if digestOf(g.Result.Bytes) != g.Result.Digest {
			t.Fatal("the digest is not the bytes' digest")
		}
		for _, d := range m.Manifests {
			if d.MediaType.IsIndex() {
				t.Fatalf("a nested index was served: %s", g.Result.Bytes)
			}
		}
	})
}
