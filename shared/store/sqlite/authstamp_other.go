//go:build !unix

package sqlite

import "os"

// ownLikeDatabase does nothing where files have no Unix owner (see authstamp_unix.go).
func ownLikeDatabase(*os.File, string) {}
