package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// trimResident drops the pages of this program's own executable file — its code and
// read-only data, mapped from the file — from the process's resident set, and tells the
// kernel to map them back one at a time as they are used (MADV_RANDOM: no fault-around),
// so that an idle agent keeps resident only the code it runs. Nothing is lost: the pages
// are clean copies of the file. Writable mappings are left alone.
func trimResident() {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		for _, advice := range []uintptr{syscall.MADV_RANDOM, syscall.MADV_DONTNEED} {
			_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), advice)
		}
	}
}
