package proxy

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/gorilla/mux"

	"github.com/manifold-proxy/manifold/store"
	"github.com/manifold-proxy/manifold/upstream"
)

// emptyReferrers is the referrers answer for a synthesized index: nothing
// was ever pushed with it as subject.
var emptyReferrers = []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)

// referrers serves GET /v2/<name>/referrers/<digest> (distribution spec
// "Listing referrers"): an empty list for a synthesized index, upstream's
// answer otherwise.
func (p *Proxy) referrers(w http.ResponseWriter, r *http.Request, t target) error {
	d, err := parseDigest(mux.Vars(r)["digest"])
	if err != nil {
		return err
	}
	_, err = p.o.Store.Get(r.Context(), t.key(d))
	if err == nil && !synthesisOff(r) {
		w.Header().Set("Content-Type", string(types.OCIImageIndex))
		w.Header().Set("Content-Length", strconv.Itoa(len(emptyReferrers)))
		_, _ = w.Write(emptyReferrers)
		return nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		p.storeReadErrors.Add(1)
		p.log.Warn("index store read failed", "error", err)
	}
	return p.forward(w, r, t, forwardOpts{path: "/v2/" + t.repo + "/referrers/" + d.String(), scopes: []string{upstream.Scope(t.repo, "pull")}})
}
