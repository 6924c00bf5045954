package proxy_test

import (
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

type mutateAdd struct {
	img      v1.Image
	platform *v1.Platform
}

func buildIndex(adds []mutateAdd) v1.ImageIndex {
	var idx v1.ImageIndex = empty.Index
	for _, a := range adds {
		mt, _ := a.img.MediaType()
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: a.img, Descriptor: v1.Descriptor{MediaType: mt, Platform: a.platform}})
	}
	return idx
}

func strconvItoa(n int) string { return strconv.Itoa(n) }
