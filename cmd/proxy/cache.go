package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

type purgeFlags struct {
	url, digest, username string
	passwordStdin         bool
}

func newCache() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Manage the content cache of a running proxy",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newCachePurge())
	return cmd
}

func newCachePurge() *cobra.Command {
	var f purgeFlags
	cmd := &cobra.Command{
		Use:   "purge REPOSITORY",
		Short: "Forget what a running proxy's content cache holds for a repository, or drop one digest",
		Long: `Content deleted upstream behind the proxy's back stays servable from the
content cache until it is evicted. purge tells a running proxy to forget it:

  proxy cache purge team/app                  the repository's content is served
                                              again only once the upstream confirms it
  proxy cache purge team/app --digest sha256:…  the digest is dropped from the cache,
                                              for every repository

It sends DELETE /_manifold/content/<repository>[?digest=…] to --url, which the
proxy authorizes as a delete on the repository (auth.rules' write list).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			password := ""
			if f.passwordStdin {
				b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 4096))
				if err != nil {
					return fmt.Errorf("reading the password: %w", err)
				}
				password = strings.TrimRight(string(b), "\r\n")
			}
			if err := purge(f, args[0], password); err != nil {
				return err
			}
			what := args[0]
			if f.digest != "" {
				what = args[0] + "@" + f.digest
			}
			fmt.Fprintln(cmd.OutOrStdout(), "purged", what)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.url, "url", "http://localhost:5000", "the proxy's URL")
	fl.StringVar(&f.digest, "digest", "", "drop this digest (for every repository) instead of the repository's confirmations")
	fl.StringVar(&f.username, "username", "", "user to log in to the proxy as")
	fl.BoolVar(&f.passwordStdin, "password-stdin", false, "read the password from stdin")
	return cmd
}

// purge asks the proxy at f.url to purge repo (or f.digest).
func purge(f purgeFlags, repo, password string) error {
	u, err := url.Parse(strings.TrimRight(f.url, "/") + "/_manifold/content/" + repo)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("--url %q: want http://host[:port] or https://host[:port]", f.url)
	}
	if f.digest != "" {
		u.RawQuery = url.Values{"digest": {f.digest}}.Encode()
	}
	req, err := http.NewRequest(http.MethodDelete, u.String(), nil)
	if err != nil {
		return err
	}
	if f.username != "" {
		req.SetBasicAuth(f.username, password)
	}
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusAccepted {
		return nil
	}
	var env struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &env) == nil && len(env.Errors) > 0 {
		return fmt.Errorf("purging %s: %s: %s %s", repo, resp.Status, env.Errors[0].Code, env.Errors[0].Message)
	}
	return errors.New("purging " + repo + ": " + resp.Status)
}
