// Package migratetest seeds the repository that the tests of migrate and of
// the inspect and migrate commands work on, in a [regtest.Registry], and
// starts a proxy in front of it.
package migratetest
