//go:build unix

package sqlite

import (
	"os"
	"syscall"
)

// ownLikeDatabase gives f, a stamp file root has just created, to the owner of the database
// at db when that is another user (`sudo baton token rotate-admin` before the server made
// the stamp): the server must be able to open it.
func ownLikeDatabase(f *os.File, db string) {
	if os.Geteuid() != 0 {
		return
	}
	st, err := os.Stat(db)
	if err != nil {
		return
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Uid != 0 {
		_ = f.Chown(int(sys.Uid), int(sys.Gid))
	}
}
