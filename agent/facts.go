package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// facterTimeout bounds one `facter --json` run.
const facterTimeout = 60 * time.Second

// Facts returns this node's facts: the output of `facter --json` when facter is on PATH and
// succeeds, otherwise built-in facts shaped like facter's core facts (hostname, fqdn, domain,
// networking, os, kernel*, architecture, processors, memory, system_uptime), gathered without
// running any program.
func Facts(ctx context.Context) (map[string]any, error) {
	if p, err := exec.LookPath("facter"); err == nil {
		if f, err := facterFacts(ctx, p); err == nil {
			return f, nil
		}
	}
	return builtinFacts(), nil
}

func facterFacts(ctx context.Context, facter string) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, facterTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, facter, "--json")
	setProcessGroup(cmd)
	cmd.Cancel = func() error { return killProcessGroup(cmd.Process.Pid) }
	cmd.WaitDelay = ioGrace
	// facter exits non-zero when any single fact failed to resolve (e.g. a file it may not
	// read) yet still prints every other fact: its output counts whenever it is a JSON object.
	out, runErr := cmd.Output()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("run facter: %w", ctx.Err())
	}
	var facts map[string]any
	if err := json.Unmarshal(out, &facts); err != nil {
		if runErr != nil {
			return nil, fmt.Errorf("run facter: %w", runErr)
		}
		return nil, fmt.Errorf("parse facter output: %w", err)
	}
	if facts == nil {
		return nil, errors.New("parse facter output: not a JSON object")
	}
	return facts, nil
}

func builtinFacts() map[string]any {
	host, _ := os.Hostname()
	short, domain, _ := strings.Cut(host, ".")
	if domain == "" {
		domain = resolvDomain("/etc/resolv.conf")
	}
	fqdn := short
	if domain != "" {
		fqdn = short + "." + domain
	}
	osFacts := osFacts()
	kernel, kernelRelease := kernelFacts()
	arch := architecture(osFacts["family"] == "Debian")
	osFacts["architecture"] = arch
	osFacts["hardware"] = hardware()

	networking := networkingFacts()
	networking["hostname"] = short
	networking["fqdn"] = fqdn
	if domain != "" {
		networking["domain"] = domain
	}

	facts := map[string]any{
		"hostname":           short,
		"fqdn":               fqdn,
		"networking":         networking,
		"os":                 osFacts,
		"kernel":             kernel,
		"architecture":       arch,
		"hardwaremodel":      hardware(),
		"processors":         map[string]any{"count": runtime.NumCPU()},
		"baton_facts_source": "builtin",
	}
	if domain != "" {
		facts["domain"] = domain
	}
	if kernelRelease != "" {
		facts["kernelrelease"] = kernelRelease
		version, _, _ := strings.Cut(kernelRelease, "-")
		facts["kernelversion"] = version
		parts := strings.SplitN(version, ".", 3)
		if len(parts) >= 2 {
			facts["kernelmajversion"] = parts[0] + "." + parts[1]
		}
	}
	if total, avail, ok := memInfo("/proc/meminfo"); ok {
		sys := map[string]any{"total_bytes": total}
		if avail > 0 {
			sys["available_bytes"] = avail
		}
		facts["memory"] = map[string]any{"system": sys}
	}
	if up, ok := uptimeSeconds("/proc/uptime"); ok {
		facts["system_uptime"] = map[string]any{"seconds": up}
	}
	return facts
}

// resolvDomain returns the "domain" (or first "search") entry of a resolv.conf.
func resolvDomain(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var search string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "domain":
			return f[1]
		case "search":
			if search == "" {
				search = f[1]
			}
		}
	}
	return search
}

// kernelFacts returns facter's "kernel" (Linux, Darwin, windows, ...) and the kernel release.
func kernelFacts() (kernel, release string) {
	switch runtime.GOOS {
	case "linux":
		kernel = "Linux"
	case "darwin":
		kernel = "Darwin"
	case "freebsd":
		kernel = "FreeBSD"
	case "openbsd":
		kernel = "OpenBSD"
	case "windows":
		kernel = "windows"
	default:
		kernel = runtime.GOOS
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		release = strings.TrimSpace(string(b))
	}
	return kernel, release
}

// hardware is the machine type uname -m would print.
func hardware() string {
	switch runtime.GOARCH {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "386":
		return "i686"
	default:
		return runtime.GOARCH
	}
}

// architecture is facter's "architecture": Debian-family systems report the dpkg name.
func architecture(debian bool) string {
	if debian {
		switch runtime.GOARCH {
		case "amd64", "arm64":
			return runtime.GOARCH
		case "386":
			return "i386"
		}
	}
	return hardware()
}

// osFacts builds facter's "os" fact from /etc/os-release (Linux) or the Go runtime.
func osFacts() map[string]any {
	if runtime.GOOS != "linux" {
		name, _ := kernelFacts()
		return map[string]any{"name": name, "family": name}
	}
	rel, err := parseOSRelease("/etc/os-release")
	if err != nil {
		rel, _ = parseOSRelease("/usr/lib/os-release")
	}
	name, family := osNameFamily(rel["ID"], rel["ID_LIKE"])
	full := rel["VERSION_ID"]
	if rel["ID"] == "debian" {
		if b, err := os.ReadFile("/etc/debian_version"); err == nil {
			if v := strings.TrimSpace(string(b)); v != "" && v[0] >= '0' && v[0] <= '9' {
				full = v
			}
		}
	}
	release := map[string]any{}
	if full != "" {
		release["full"] = full
		major, rest, _ := strings.Cut(full, ".")
		release["major"] = major
		if minor, _, _ := strings.Cut(rest, "."); minor != "" {
			release["minor"] = minor
		}
	}
	out := map[string]any{"name": name, "family": family, "release": release}
	if codename := rel["VERSION_CODENAME"]; codename != "" {
		out["distro"] = map[string]any{"codename": codename, "id": rel["NAME"]}
	}
	return out
}

// parseOSRelease reads KEY=value lines (values optionally quoted) of an os-release file.
func parseOSRelease(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		} else {
			v = strings.Trim(v, `'"`)
		}
		out[k] = v
	}
	return out, nil
}

// osNameFamily maps os-release ID/ID_LIKE to facter's os.name and os.family.
func osNameFamily(id, idLike string) (name, family string) {
	names := map[string]string{
		"debian": "Debian", "ubuntu": "Ubuntu", "linuxmint": "LinuxMint", "raspbian": "Raspbian",
		"rhel": "RedHat", "centos": "CentOS", "fedora": "Fedora", "rocky": "Rocky",
		"almalinux": "AlmaLinux", "ol": "OracleLinux", "amzn": "Amazon", "scientific": "Scientific",
		"sles": "SLES", "sled": "SLED", "opensuse": "OpenSuSE", "opensuse-leap": "OpenSuSE",
		"opensuse-tumbleweed": "OpenSuSE", "alpine": "Alpine", "arch": "Archlinux",
		"gentoo": "Gentoo", "photon": "PhotonOS",
	}
	families := map[string]string{
		"debian": "Debian", "ubuntu": "Debian",
		"rhel": "RedHat", "fedora": "RedHat", "centos": "RedHat",
		"suse": "Suse", "sles": "Suse", "opensuse": "Suse",
		"alpine": "Alpine", "arch": "Archlinux", "gentoo": "Gentoo",
	}
	name = names[id]
	if name == "" && id != "" {
		name = strings.ToUpper(id[:1]) + id[1:]
	}
	if name == "" {
		name = "Linux"
	}
	family = families[id]
	if strings.HasPrefix(id, "opensuse") || id == "sled" {
		family = "Suse"
	}
	for _, like := range strings.Fields(idLike) {
		if family != "" {
			break
		}
		if strings.HasPrefix(like, "opensuse") {
			like = "suse"
		}
		family = families[like]
	}
	if family == "" {
		family = name
	}
	return name, family
}

// networkingFacts lists interfaces with their addresses and picks the primary one (the
// interface of the IPv4 default route, else the first non-loopback interface with an address).
func networkingFacts() map[string]any {
	out := map[string]any{}
	ifaces, err := net.Interfaces()
	if err != nil {
		return out
	}
	primary := defaultRouteInterface("/proc/net/route")
	interfaces := map[string]any{}
	firstWithIP := ""
	for _, ifc := range ifaces {
		m := map[string]any{"mtu": ifc.MTU}
		if len(ifc.HardwareAddr) > 0 {
			m["mac"] = ifc.HardwareAddr.String()
		}
		addrs, _ := ifc.Addrs()
		for _, addr := range addrs {
			ipn, ok := addr.(*net.IPNet)
			if !ok {
				continue
			}
			if ip4 := ipn.IP.To4(); ip4 != nil {
				if _, seen := m["ip"]; !seen {
					m["ip"] = ip4.String()
					m["netmask"] = net.IP(ipn.Mask).String()
				}
			} else if _, seen := m["ip6"]; !seen && !ipn.IP.IsLinkLocalUnicast() {
				m["ip6"] = ipn.IP.String()
			}
		}
		interfaces[ifc.Name] = m
		if _, hasIP := m["ip"]; hasIP && firstWithIP == "" && ifc.Flags&net.FlagLoopback == 0 {
			firstWithIP = ifc.Name
		}
	}
	out["interfaces"] = interfaces
	if _, ok := interfaces[primary]; !ok {
		primary = firstWithIP
	}
	if primary != "" {
		out["primary"] = primary
		p := interfaces[primary].(map[string]any)
		for _, k := range []string{"ip", "ip6", "mac", "mtu", "netmask"} {
			if v, ok := p[k]; ok {
				out[k] = v
			}
		}
	}
	return out
}

// defaultRouteInterface reads the interface of the IPv4 default route from /proc/net/route.
func defaultRouteInterface(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[1] == "00000000" {
			return f[0]
		}
	}
	return ""
}

// memInfo reads MemTotal and MemAvailable (in bytes) from /proc/meminfo.
func memInfo(path string) (total, avail int64, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "MemTotal:":
			total = n * 1024
		case "MemAvailable:":
			avail = n * 1024
		}
	}
	return total, avail, total > 0
}

func uptimeSeconds(path string) (int64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, false
	}
	return int64(v), true
}

// AgentFact is the fact under which the agent reports itself with the node's facts: its task
// features (as selection uses them), the Puppet version it found and its interpreters. The
// server shows them in the inventory (GET /inventory/{node}).
const AgentFact = "baton_agent"

// withAgentFacts returns facts with the agent's own fact added (a shallow copy; facts itself
// is not changed), and facter's "puppetversion" when facts lack it and Puppet was found. It
// waits for feature detection (see lazyPlatform); when ctx ends first, facts go without.
func (a *Agent) withAgentFacts(ctx context.Context, facts map[string]any) map[string]any {
	plat, err := a.cfg.platform.get(ctx)
	if err != nil {
		return facts
	}
	out := make(map[string]any, len(facts)+2)
	for k, v := range facts {
		out[k] = v
	}
	self := map[string]any{"features": plat.features, "interpreters": interpreterFacts(plat.interpreters)}
	if plat.puppetVersion != "" {
		self["puppet_version"] = plat.puppetVersion
		if _, ok := out["puppetversion"]; !ok {
			out["puppetversion"] = plat.puppetVersion
		}
	}
	out[AgentFact] = self
	return out
}
