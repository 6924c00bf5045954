// Command proxy is manifold: a registry front-end that serves multi-platform
// indexes for per-platform tags (serve), builds and pushes those tags
// (build), and turns them into real indexes (inspect, migrate).
package main
