package ui_test

import (
	"bytes"
	"context"
	"flag"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/manifold-proxy/manifold/proxy"
)

var updateScreenshots = flag.Bool("update-screenshots", false, "rewrite docs/images/ui-*.png from the browser test")

// chromium finds Debian's chromium: skipped without it, except under
// CI=true (.ci/install-deps installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not installed (.ci/install-deps installs it)")
	}
	t.Skip("chromium not installed: apt-get install chromium (or .ci/install-deps)")
	return ""
}

// TestBrowser loads the fixture repository's page in a real headless
// Chromium with JavaScript off, checks that the matrix cells and the
// exclusion reason are visible, and takes the screenshots the README
// shows.
func TestBrowser(t *testing.T) {
	bin := chromium(t)
	s := newSite(t, proxy.Options{})
	s.seedFixture(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-first-run", true), chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1500, 900))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()

	if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		t.Fatal(err)
	}
	reasonSel := `#matrix tr[data-base="2.0"] td.cell.out .reason`
	if err := chromedp.Do(ctx, chromedp.Navigate(s.srv.URL+"/ui/r/team/app"), chromedp.WaitVisible(reasonSel)); err != nil {
		t.Fatal(err)
	}
	reason, err := chromedp.Run(ctx, chromedp.Text(reasonSel))
	if err != nil {
		t.Fatal(err)
	}
	cell, err := chromedp.Run(ctx, chromedp.Text(`#matrix tr[data-base="1.0"]`))
	if err != nil {
		t.Fatal(err)
	}
	visible, err := chromedp.Run(ctx, chromedp.EvaluateAsDevTools[bool](`(() => { const e = document.querySelector('`+reasonSel+`'); const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== 'hidden'; })()`))
	if err != nil {
		t.Fatal(err)
	}
	matrixPNG, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(s.srv.URL+"/ui/r/team/app/-/1.0"), chromedp.WaitVisible(`#index-json`)); err != nil {
		t.Fatal(err)
	}
	tagPNG, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(reason, "config says linux/amd64, tag says linux/arm64") || !visible {
		t.Errorf("the exclusion reason is not visible: %q (visible %v)", reason, visible)
	}
	for _, want := range []string{"1.0-linux-amd64", "1.0-linux-arm-v7", "1.0-windows-amd64", "index"} {
		if !strings.Contains(cell, want) {
			t.Errorf("the 1.0 row does not show %q: %q", want, cell)
		}
	}
	for name, b := range map[string][]byte{"ui-matrix.png": matrixPNG, "ui-tag.png": tagPNG} {
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil || img.Bounds().Dx() < 800 {
			t.Errorf("%s: not a screenshot: %v", name, err)
			continue
		}
		path := filepath.Join(t.TempDir(), name)
		if *updateScreenshots {
			path = filepath.Join("..", "docs", "images", name)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
