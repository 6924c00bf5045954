package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "proxy:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "proxy",
		Short: "manifold: multi-platform images from per-platform tags",
		Long: `manifold serves a multi-platform index under app:1.4 when a registry holds
app:1.4-linux-amd64, app:1.4-linux-arm64, ... — without changing the registry.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServe(), newBuild(), newInspect(), newMigrate(), newCache(), newVersion())
	return root
}
