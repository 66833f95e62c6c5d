//go:build race

package integration

// raceBuild: the suite runs under -race, so the binary is built with it too
// and races inside the server fail the run.
const raceBuild = true
