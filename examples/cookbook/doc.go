// Package cookbook holds the programs of docs/cookbook.md as runnable,
// tested examples: each recipe is an Example function with its expected
// output, run by go test (and so by make test), and TestCookbookShowsTheCode
// checks that every Go block of docs/cookbook.md is this package's code.
//
//	go test -v -run Example ./examples/cookbook
package cookbook
