package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/baton-run/baton/shared/auth"
	"github.com/baton-run/baton/shared/client"
)

func cmdNodeAdd(args []string) error {
	fs, cf := newClientFlagSet("node add")
	out := fs.String("out", "", "file to write the node's credential to (mode 0600)")
	enrollTTL := fs.String("enrollment-ttl", "", "how long the one-time enrolment token can be used (1h, 1d; default 1h)")
	agentServer := fs.String("agent-server", "", "the agents' WebSocket URL to write into the credential (default: this server's /pcp; on AWS the stack's WebSocketUrl)")
	withSecret := fs.Bool("secret", false, "give the node a shared secret instead of an enrolment token (the agent then makes no key pair)")
	fingerprint := fs.String("tls-fingerprint", "", "SHA-256 fingerprint (hex) of a remote server's self-signed TLS certificate (see its `baton serve` output); the credential records it for the agent")
	caFile := fs.String("ca-file", "", "PEM CA file to verify a remote server's TLS certificate with (the agent then needs --ca-file too)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" {
		return usageError("usage: baton node add NAME --out FILE [--tls-fingerprint HEX | --ca-file FILE]")
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	if *fingerprint != "" || *caFile != "" {
		t, err := newServerTrust(*fingerprint, *caFile)
		if err != nil {
			return err
		}
		if err := cliTLS.set(c.BaseURL(), t); err != nil {
			return err
		}
	}
	var cred auth.Credential
	if *withSecret {
		secret, err := c.EnrollNode(context.Background(), pos[0])
		if err != nil {
			return err
		}
		cred = auth.Credential{Name: pos[0], Secret: secret, Server: agentURL(c.BaseURL())}
	} else {
		e, err := c.EnrollNodeToken(context.Background(), pos[0], *enrollTTL)
		if err != nil {
			return err
		}
		cred = auth.Credential{Name: pos[0], EnrollmentToken: e.EnrollmentToken, Server: agentURL(c.BaseURL()), API: c.BaseURL()}
	}
	if *agentServer != "" {
		cred.Server = *agentServer
	}
	hint := ""
	if u, err := url.Parse(c.BaseURL()); err == nil && u.Scheme == "https" {
		// The enrolment went through a connection checked this way, so a pin is the
		// certificate the server really presents.
		t, err := cliTLS.trustFor(hostPort(u))
		if err != nil {
			return err
		}
		cred.Fingerprint = t.Fingerprint
		if t.CAFile != "" {
			hint = " --ca-file " + t.CAFile
		}
	} else if err == nil && !loopbackHost(u.Hostname()) {
		hint = " --insecure"
	}
	if err := auth.WriteCredential(*out, cred); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "Node %s enrolled; its credential is in %s (keep it secret).\nStart its agent with:\n  baton-agent --credential %s%s\n", pos[0], *out, *out, hint)
	return nil
}

// loopbackHost reports whether h is localhost or a loopback IP address.
func loopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// agentURL is the agents' WebSocket URL of the server at base.
func agentURL(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return ""
	}
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	u.Path = "/pcp"
	return u.String()
}

func cmdNodeList(args []string) error {
	fs, cf := newClientFlagSet("node list")
	format := fs.String("format", "table", "table or json")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	nodes, err := c.Inventory(context.Background())
	if err != nil {
		return err
	}
	if *format == "json" {
		return printJSON(nodes)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tCONNECTED\tSINCE")
	for _, n := range nodes {
		since := "-"
		if n.Timestamp != nil {
			since = n.Timestamp.Local().Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(tw, "%s\t%v\t%s\n", n.Name, n.Connected, since)
	}
	return tw.Flush()
}

func cmdNodeShow(args []string) error {
	fs, cf := newClientFlagSet("node show")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("node show needs one node name")
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	n, err := c.InventoryNode(context.Background(), pos[0])
	if err != nil {
		return err
	}
	return printJSON(n)
}

func cmdNodeRevoke(args []string) error {
	return nameCommand("node revoke", "node revoke needs one node name", args, (*client.Client).RevokeNode,
		"Node %s revoked: its credential no longer works and its connection was closed")
}
