// Package bench compares Spillway's policies with the peer libraries —
// sony/gobreaker, failsafe-go, afex/hystrix-go, eapache/go-resiliency and
// cenkalti/backoff — in one run on one machine. It is a module of its own so
// that the root module never depends on them. Results and the command that
// produced them are in docs/benchmarks.md.
package bench
