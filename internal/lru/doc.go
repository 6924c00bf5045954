// Package lru is the one byte-bounded LRU of manifold: caches whose values
// vary in size (parsed member indexes, synthesized index bytes) are bounded
// by what they hold, not by how many entries, because counting entries
// bounds nothing when one entry can be megabytes.
package lru
