package resolve

import (
	"crypto/sha256"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/hashicorp/golang-lru/v2/expirable"

	"github.com/manifold-proxy/manifold/index"
)

// findMemo remembers, per repository, the last tag list FindIndex searched
// whole and which base served which digest under it.
type findMemo struct {
	l *expirable.LRU[string, searched]
}

type searched struct {
	fingerprint string
	found       map[v1.Hash]string
}

// findMemoEntries and findMemoTTL bound the memo: repositories searched,
// and how long a search answers for a tag list that did not change.
const (
	findMemoEntries = 10000
	findMemoTTL     = 10 * time.Minute
)

func newFindMemo() *findMemo {
	return &findMemo{l: expirable.NewLRU[string, searched](findMemoEntries, nil, findMemoTTL)}
}

func (m *findMemo) get(repo, fp string) (map[v1.Hash]string, bool) {
	s, ok := m.l.Get(repo)
	if !ok || s.fingerprint != fp {
		return nil, false
	}
	return s.found, true
}

func (m *findMemo) add(repo, fp string, found map[v1.Hash]string) {
	m.l.Add(repo, searched{fingerprint: fp, found: found})
}

// fingerprint identifies a tag list and the rule it was searched under.
func fingerprint(tags []string, rule index.Rule) string {
	h := sha256.New()
	h.Write([]byte(ruleKey(rule)))
	for _, t := range tags {
		h.Write([]byte{0})
		h.Write([]byte(t))
	}
	return string(h.Sum(nil))
}
