package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"

	"github.com/manifold-proxy/manifold/index"
	"github.com/manifold-proxy/manifold/platform"
)

// upstreamHost is host:port of a loopback registry URL.
func upstreamHost(u string) string { return strings.TrimPrefix(u, "http://") }

// platformImage is a small random image whose config says p.
func platformImage(p string) (v1.Image, error) {
	pl, err := v1.ParsePlatform(p)
	if err != nil {
		return nil, err
	}
	img, err := random.Image(256, 1)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = pl.OS, pl.Architecture, pl.Variant
	return mutate.ConfigFile(img, cf)
}

// pushMembers pushes base-<os>-<arch>[-<variant>] in repo for each of
// platforms, the legacy per-arch tags the proxy groups.
func pushMembers(host, repo, base string, platforms []string) error {
	var eg errgroup.Group
	eg.SetLimit(8)
	for _, p := range platforms {
		eg.Go(func() error {
			img, err := platformImage(p)
			if err != nil {
				return err
			}
			pl, err := platform.Parse(p)
			if err != nil {
				return err
			}
			ref, err := name.NewTag(host+"/"+repo+":"+base+"-"+index.FormatSuffix(pl), name.Insecure)
			if err != nil {
				return err
			}
			return remote.Write(ref, img)
		})
	}
	return eg.Wait()
}

// tagMany tags one image n times in repo (n-1 suffixed tags in bases of
// two, and the image's own tag).
func tagMany(host, repo string, n int) error {
	img, err := platformImage("linux/amd64")
	if err != nil {
		return err
	}
	first, err := name.NewTag(host+"/"+repo+":seed-linux-amd64", name.Insecure)
	if err != nil {
		return err
	}
	if err := remote.Write(first, img); err != nil {
		return err
	}
	desc, err := remote.Get(first)
	if err != nil {
		return err
	}
	var eg errgroup.Group
	eg.SetLimit(32)
	suffixes := []string{"linux-amd64", "linux-arm64"}
	for i := range n - 1 {
		eg.Go(func() error {
			t, err := name.NewTag(fmt.Sprintf("%s/%s:%d-%s", host, repo, i/2, suffixes[i%2]), name.Insecure)
			if err != nil {
				return err
			}
			return remote.Tag(t, desc)
		})
	}
	return eg.Wait()
}

// randomStream is size bytes of a seeded ChaCha8 stream: the same bytes
// every time, never all in memory.
func randomStream(size int64) io.Reader {
	var seed [32]byte
	return io.LimitReader(rand.NewChaCha8(seed), size)
}

// pushBlob uploads a blob of size bytes into repo with a monolithic
// upload streamed from randomStream, and returns its digest.
func pushBlob(registryURL, repo string, size int64) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, randomStream(size)); err != nil {
		return "", err
	}
	digest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	resp, err := http.Post(registryURL+"/v2/"+repo+"/blobs/uploads/", "", bytes.NewReader(nil))
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("starting the blob upload: HTTP %d", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return "", err
	}
	base, _ := url.Parse(registryURL)
	loc = base.ResolveReference(loc)
	q := loc.Query()
	q.Set("digest", digest)
	loc.RawQuery = q.Encode()
	req, err := http.NewRequest(http.MethodPut, loc.String(), randomStream(size))
	if err != nil {
		return "", err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("uploading the blob: HTTP %d", resp.StatusCode)
	}
	return digest, nil
}
