package resolve_test

import (
	"net/http"
	"sync/atomic"
)

func countHandler(h http.Handler, n *atomic.Int64, path func(string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		path(r.URL.Path)
		h.ServeHTTP(w, r)
	})
}
