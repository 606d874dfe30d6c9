package main

import (
	"context"
	"fmt"
)

func cmdNodeRevoke(args []string) error {
	fs := newFlagSet("node revoke")
	var cf clientFlags
	cf.register(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("node revoke needs one node name")
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	if err := c.RevokeNode(context.Background(), pos[0]); err != nil {
		return err
	}
	fmt.Printf("Node %s revoked: its credential no longer works and its connection was closed\n", pos[0])
	return nil
}
