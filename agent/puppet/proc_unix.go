//go:build unix

package puppet

import (
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killProcessTree kills puppet's process group and every descendant of pid. Puppet starts the
// commands of exec resources and providers with setsid, so they leave the group; where /proc
// shows the process tree (Linux) they are found and killed too. The group and the
// descendants are stopped first so that none can fork while the tree is collected.
func killProcessTree(pid int) error {
	if err := syscall.Kill(-pid, syscall.SIGSTOP); errors.Is(err, syscall.ESRCH) {
		return nil
	}
	stopped := map[int]bool{}
	for range 10 {
		found := false
		for _, d := range descendants(pid) {
			if !stopped[d] {
				stopped[d], found = true, true
				_ = syscall.Kill(d, syscall.SIGSTOP)
			}
		}
		if !found {
			break
		}
	}
	for d := range stopped {
		_ = syscall.Kill(d, syscall.SIGKILL)
	}
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// descendants lists the processes below pid, read from /proc/<pid>/stat; nil without /proc.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := parentPID(p); ok {
			children[ppid] = append(children[ppid], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// parentPID reads the parent of pid from /proc/<pid>/stat ("pid (comm) state ppid ...").
func parentPID(pid int) (int, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(fields[1])
	return ppid, err == nil
}

var puppetCommRE = regexp.MustCompile(`puppet(-.*)?$`)

// puppetProcessAlive applies Puppet's Pidlock staleness rule: the process exists and its
// command name matches /puppet(-.*)?$/, or it is ruby running puppet. Where /proc cannot tell,
// a live process counts.
func puppetProcessAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	dir := "/proc/" + strconv.Itoa(pid)
	comm, err := os.ReadFile(dir + "/comm")
	if err != nil {
		return true
	}
	args, err := os.ReadFile(dir + "/cmdline")
	if err != nil {
		return true
	}
	name := strings.TrimSpace(string(comm))
	return puppetCommRE.MatchString(name) || (strings.Contains(name, "ruby") && strings.Contains(string(args), "puppet"))
}
