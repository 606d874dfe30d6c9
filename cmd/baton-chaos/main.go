// Command baton-chaos is Baton's chaos suite (make chaos): it starts `baton serve` and real
// baton-agent processes, runs many small chaos::ledger jobs through them while it kills agents
// and the server, cuts, delays, stalls, duplicates and black-holes their traffic and fills the
// disk under the database and a spool, then checks every node-run against the ledger the task
// itself wrote: none lost, none run twice, none stuck, none misreported.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "baton-chaos:", err)
		os.Exit(2)
	}
	cfg.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.logLevel}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := run(ctx, cfg, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "baton-chaos:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}
