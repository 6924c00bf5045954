// Package store keeps the bytes of synthesized indexes by digest, so an
// index served under a tag stays fetchable by its digest — on this replica
// from memory, on every replica from a shared storage driver backend
// (filesystem, s3, gcs, azure: distribution's storage drivers). A replica
// that has never seen a digest recomputes it (deterministic synthesis);
// the store makes that rare and makes old digests survive upstream changes
// for as long as the backend keeps them.
package store
