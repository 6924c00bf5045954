// Command broken compiles everywhere but on arm64, to test that one
// platform's compile error stops the whole build.
package main

func main() { run() }
