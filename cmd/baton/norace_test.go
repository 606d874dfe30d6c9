//go:build !race

package main

// raceEnabled is whether this test binary was built with -race; the end-to-end test then
// builds the binaries it runs with -race too.
const raceEnabled = false
