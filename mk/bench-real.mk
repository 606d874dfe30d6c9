# Real agents only (issue 12): one baton-agent process per node, each task a real process
# under the task supervisor. BENCH_REAL_ARGS adds flags, e.g. --real-start full (facter and
# puppet --version in every agent) or --start-sample 0.
BENCH_REAL_SIZES ?= 200,500

.PHONY: bench-real

bench-real: build ## Fan-out on 200 and 500 real baton-agent processes (each task a real process), a node's start-up with facter and puppet measured apart; results to standard output
	$(GO) run ./cmd/baton-bench --bin $(BIN) --sizes "" --real-agents "$(BENCH_REAL_SIZES)" --runs 5 --out "" $(BENCH_REAL_ARGS)
