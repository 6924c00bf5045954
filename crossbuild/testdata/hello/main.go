// Command hello is the program the build tests cross-compile: small, so
// the test builds stay fast on every platform, and it serves the article's
// static/ directory to show where --add puts it.
package main

import (
	"os"
	"runtime"
)

func main() {
	os.Stdout.WriteString("hello from " + runtime.GOOS + "/" + runtime.GOARCH + "\n")
	if len(os.Args) > 1 {
		b, err := os.ReadFile(os.Args[1])
		if err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.Write(b)
	}
}
