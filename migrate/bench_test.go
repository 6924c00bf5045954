package migrate_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/manifold-proxy/manifold/internal/regtest"
	"github.com/manifold-proxy/manifold/migrate"
)

// seedWide pushes bases × 8 platforms of distinct images into repo.
func seedWide(b *testing.B, reg *regtest.Registry, repo string, bases int) {
	b.Helper()
	plats := []string{
		"linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6",
		"linux/ppc64le", "linux/s390x", "linux/riscv64", "linux/386",
	}
	var eg errgroup.Group
	eg.SetLimit(8)
	for i := range bases {
		for _, p := range plats {
			eg.Go(func() error {
				tag := fmt.Sprintf("1.%d-%s", i, strings.ReplaceAll(p, "/", "-"))
				reg.Push(b, repo, tag, regtest.PlatformImage(b, p, false))
				return nil
			})
		}
	}
	_ = eg.Wait()
}

// BenchmarkInspect: a fresh Migrator (cold caches) inspecting 50 bases × 8
// platforms of the in-process registry.
func BenchmarkInspect(b *testing.B) {
	reg := regtest.NewRegistry(b)
	seedWide(b, reg, "big/app", 50)
	for b.Loop() {
		m, err := migrate.New(migrate.Options{Client: reg.Client(b), Repository: "big/app"})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.Inspect(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMigrateUnchanged: inspect and migrate of 50 already migrated
// bases (the idempotent re-run: read-backs only).
func BenchmarkMigrateUnchanged(b *testing.B) {
	reg := regtest.NewRegistry(b)
	seedWide(b, reg, "big/app", 50)
	run := func() *migrate.Summary {
		m, err := migrate.New(migrate.Options{Client: reg.Client(b), Repository: "big/app"})
		if err != nil {
			b.Fatal(err)
		}
		r, err := m.Inspect(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		return m.Apply(context.Background(), r, migrate.ApplyOptions{})
	}
	if err := run().Err(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := run().Err(); err != nil {
			b.Fatal(err)
		}
	}
}
