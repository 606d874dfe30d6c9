package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/baton-run/baton/shared/client"
)

func cmdGroupAdd(args []string) error {
	fs, cf := newClientFlagSet("group add")
	nodes := fs.String("nodes", "", "comma-separated node names")
	query := fs.String("query", "", "a scope query; the group is whatever it matches when a job starts")
	desc := fs.String("description", "", "description")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || (*nodes == "") == (*query == "") {
		return usageError("usage: baton group add NAME (--nodes a,b | --query Q)")
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	g := client.Group{Name: pos[0], Description: *desc, Query: *query}
	for _, n := range strings.Split(*nodes, ",") {
		if n = strings.TrimSpace(n); n != "" {
			g.Nodes = append(g.Nodes, n)
		}
	}
	if _, err := c.CreateGroup(context.Background(), g); err != nil {
		return err
	}
	fmt.Printf("Group %s created\n", g.Name)
	return nil
}

func cmdGroupList(args []string) error {
	fs, cf := newClientFlagSet("group list")
	format := fs.String("format", "table", "table or json")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	gs, err := c.Groups(context.Background())
	if err != nil {
		return err
	}
	if *format == "json" {
		return printJSON(gs)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tMEMBERS\tDESCRIPTION")
	for _, g := range gs {
		members := strings.Join(g.Nodes, ",")
		if g.Query != "" {
			members = g.Query
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", g.Name, members, g.Description)
	}
	return tw.Flush()
}

func cmdGroupShow(args []string) error {
	fs, cf := newClientFlagSet("group show")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("group show needs one group name")
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	g, err := c.Group(context.Background(), pos[0])
	if err != nil {
		return err
	}
	return printJSON(g)
}

func cmdGroupRm(args []string) error {
	return nameCommand("group rm", "group rm needs one group name", args, (*client.Client).DeleteGroup, "Group %s removed")
}
