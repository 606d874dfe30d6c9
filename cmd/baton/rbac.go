package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/baton-run/baton/shared/client"
)

// loginTokenFile is where `baton login` keeps the caller's token; client commands use it when
// neither --token-file nor BATON_TOKEN_FILE is given.
func loginTokenFile() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "baton", "token")
}

// cmdLogin issues a fresh token for the current user (authenticated by the token the CLI would
// use otherwise, e.g. one an administrator issued) and saves it for later commands.
func cmdLogin(args []string) error {
	fs, cf := newClientFlagSet("login")
	lifetime := fs.String("lifetime", "", "how long the token is valid (PE format: 1h, 8h, 7d; default: the server's, 1h)")
	label := fs.String("label", "baton login", "label of the token")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	token, info, err := c.IssueToken(context.Background(), "", *label, *lifetime)
	if err != nil {
		return err
	}
	path := loginTokenFile()
	if path == "" {
		return errors.New("no configuration directory for the token")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := writeTokenFile(path, token); err != nil {
		return err
	}
	exp := "never"
	if info.ExpiresAt != nil {
		exp = info.ExpiresAt.Local().Format("2006-01-02 15:04")
	}
	fmt.Fprintf(os.Stderr, "Logged in as %s; token %s saved to %s (expires %s).\n", info.Login, info.ID, path, exp)
	return nil
}

func cmdTokenIssue(args []string) error {
	fs, cf := newClientFlagSet("token issue")
	login := fs.String("login", "", "who the token is for (default: yourself; others need tokens:manage)")
	lifetime := fs.String("lifetime", "", "how long it is valid (1h, 8h, 7d; default 1h)")
	label := fs.String("label", "", "a label (no commas)")
	out := fs.String("out", "", "file to write the token to (mode 0600)")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usageError("usage: baton token issue --out FILE [--login L] [--lifetime D] [--label X]")
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	token, info, err := c.IssueToken(context.Background(), *login, *label, *lifetime)
	if err != nil {
		return err
	}
	if err := writeTokenFile(*out, token); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "Token %s for %s written to %s.\n", info.ID, info.Login, *out)
	return nil
}

func cmdTokenList(args []string) error {
	fs, cf := newClientFlagSet("token list")
	format := fs.String("format", "table", "table or json")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	ts, err := c.Tokens(context.Background())
	if err != nil {
		return err
	}
	if *format == "json" {
		return printJSON(ts)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tLOGIN\tLABEL\tCREATED\tEXPIRES\tREVOKED")
	for _, t := range ts {
		exp := "never"
		if t.ExpiresAt != nil {
			exp = t.ExpiresAt.Local().Format("2006-01-02 15:04")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\n", t.ID, t.Login, t.Label, t.CreatedAt.Local().Format("2006-01-02 15:04"), exp, t.Revoked)
	}
	return tw.Flush()
}

func cmdTokenRevoke(args []string) error {
	return nameCommand("token revoke", "token revoke needs a token id (see baton token list)", args,
		(*client.Client).RevokeToken, "Token %s revoked")
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func cmdRoleAdd(args []string) error {
	fs, cf := newClientFlagSet("role add")
	var perms multiFlag
	fs.Var(&perms, "permission", "ACTION[=INSTANCE][@SCOPE], repeatable; e.g. tasks:run=demo::hello@group:webs")
	desc := fs.String("description", "", "description")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || len(perms) == 0 {
		return usageError("usage: baton role add NAME --permission P [--permission P ...]")
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	if err := c.CreateRole(context.Background(), client.Role{Name: pos[0], Description: *desc, Permissions: perms}); err != nil {
		return err
	}
	fmt.Printf("Role %s created\n", pos[0])
	return nil
}

func cmdRoleList(args []string) error {
	fs, cf := newClientFlagSet("role list")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	rs, err := c.Roles(context.Background())
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tPERMISSIONS\tDESCRIPTION")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, strings.Join(r.Permissions, " "), r.Description)
	}
	return tw.Flush()
}

func cmdRoleRm(args []string) error {
	return nameCommand("role rm", "role rm needs a role name", args, (*client.Client).DeleteRole, "Role %s removed")
}

func cmdUserSet(args []string) error {
	fs, cf := newClientFlagSet("user set")
	roles := fs.String("roles", "", "comma-separated roles (empty: none)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("usage: baton user set LOGIN --roles a,b")
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	var list []string
	for _, r := range strings.Split(*roles, ",") {
		if r = strings.TrimSpace(r); r != "" {
			list = append(list, r)
		}
	}
	if err := c.SetUserRoles(context.Background(), pos[0], list); err != nil {
		return err
	}
	fmt.Printf("User %s has roles: %s\n", pos[0], strings.Join(list, ", "))
	return nil
}

func cmdUserList(args []string) error {
	fs, cf := newClientFlagSet("user list")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	us, err := c.Users(context.Background())
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LOGIN\tROLES")
	for _, u := range us {
		fmt.Fprintf(tw, "%s\t%s\n", u.Login, strings.Join(u.Roles, ", "))
	}
	return tw.Flush()
}
