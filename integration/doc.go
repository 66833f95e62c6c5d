// Package integration is greenlane's black-box suite: it builds the real
// binary, starts it on a fresh lane DB loaded from a fixture, and speaks FD1
// to it over real WebSockets and HTTP. The tests live in _test.go files;
// `go test ./integration` runs them.
package integration
