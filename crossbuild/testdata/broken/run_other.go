//go:build !arm64

package main

func run() {}
