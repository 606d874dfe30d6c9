package awsapp_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/baton-run/baton/shared/awsapp"
	"github.com/baton-run/baton/shared/client"
)

// Capacity model of the AWS deployment: the rate it is designed for, and DynamoDB's limits
// per partition key (on-demand tables: 1,000 write units and 3,000 read units a second per
// partition; a key never spans partitions).
const (
	// TargetRate is the node-runs a second the design must carry: for one 10,000-node job,
	// and overall.
	TargetRate        = 1000.0
	partitionWCULimit = 1000.0
	partitionRCULimit = 3000.0
	// minModelJob is the smallest job the per-key limits are checked on: one that runs at
	// TargetRate for several seconds.
	minModelJob = 5000
	// stallSweep is how long the job may make no progress before the test runs the sweep.
	stallSweep = 5 * time.Second
	// growthFactor and growthSlack bound the units per node-run of a larger run against the
	// smallest: at most growthFactor times as many, plus growthSlack units (noise such as a
	// sweep of a job that stopped moving).
	growthFactor = 1.25
	growthSlack  = 0.25
)

// capacityRun is what one fan-out through the stand-in cost.
type capacityRun struct {
	n            int
	connect      time.Duration // enrolling and connecting the agents, facts in
	elapsed      time.Duration // the job, from its POST to its end
	usage        awsapp.Usage
	partitions   []awsapp.PartitionUnits
	wcuPerRun    float64
	rcuPerRun    float64
	costPerRun   float64
	instances    int // Lambda instances of the functions that charge usage (wsdefault, dispatch, api)
	hottestWrite awsapp.PartitionUnits
	hottestRead  awsapp.PartitionUnits
}

// TestCapacity runs a fleet of simulated agents (agent/fleet: the agent library's real
// protocol code, a no-op executor) through the AWS stand-in at the sizes BATON_CAPACITY_SIZES
// lists (make capacity: N = 1,000 and N = 10,000), one job on every node, and records the DynamoDB read
// and write units by partition key. It fails if any partition key would take more than
// 1,000 WCU/s or 3,000 RCU/s with node-runs at TargetRate — a key's load at that rate is
// its units per node-run of the job times the rate — or if the units per node-run grow
// with N.
func TestCapacity(t *testing.T) {
	v := os.Getenv("BATON_CAPACITY_SIZES")
	if v == "" {
		t.Skip("set BATON_CAPACITY_SIZES (make capacity: 1000,10000) to run the capacity model")
	}
	var sizes []int
	{
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				t.Fatalf("BATON_CAPACITY_SIZES: %q", v)
			}
			sizes = append(sizes, n)
		}
	}
	var runs []capacityRun
	for _, n := range sizes {
		r := runCapacity(t, n)
		runs = append(runs, r)
		t.Logf("N=%d: job finished in %s; per node-run %.2f WCU, %.2f RCU, $%.2f per million node-runs; %s",
			n, r.elapsed.Round(time.Millisecond), r.wcuPerRun, r.rcuPerRun, r.costPerRun*1e6, r.usage)
		t.Logf("N=%d: hottest write key %s %s: %.3f WCU per node-run = %.0f WCU/s at %.0f node-runs/s (%.0f WCU/s in this run)",
			n, indexName(r.hottestWrite.Index), r.hottestWrite.PK, r.hottestWrite.WCU/float64(n), r.hottestWrite.WCU/float64(n)*TargetRate, TargetRate,
			r.hottestWrite.WCU/r.elapsed.Seconds())
		t.Logf("N=%d: hottest read key %s %s: %.3f RCU per node-run = %.0f RCU/s at %.0f node-runs/s (%.0f RCU/s in this run)",
			n, indexName(r.hottestRead.Index), r.hottestRead.PK, r.hottestRead.RCU/float64(n), r.hottestRead.RCU/float64(n)*TargetRate, TargetRate,
			r.hottestRead.RCU/r.elapsed.Seconds())
		for i, p := range r.partitions {
			if i < 12 && p.WCU+p.RCU > 0 {
				t.Logf("N=%d: %s %s: %.3f WCU + %.3f RCU per node-run", n, indexName(p.Index), p.PK, p.WCU/float64(n), p.RCU/float64(n))
			}
		}
		byPrefix := map[string][2]float64{}
		for _, p := range r.partitions {
			k := indexName(p.Index) + " " + strings.TrimRight(strings.SplitN(p.PK, "#", 2)[0], "0123456789-") + "#…"
			v := byPrefix[k]
			byPrefix[k] = [2]float64{v[0] + p.WCU/float64(n), v[1] + p.RCU/float64(n)}
		}
		for k, v := range byPrefix {
			t.Logf("N=%d: keys %s: %.3f WCU + %.3f RCU per node-run", n, k, v[0], v[1])
		}
		// The usage of result invocations rides on their counter updates (and what is left
		// over on the next result's in the same instance): the usage shards take about a
		// write per Lambda instance that served the job, not one per node-run.
		usageWCU := 0.0
		for _, p := range r.partitions {
			if p.Index == "" && strings.Contains(p.PK, "#U") {
				usageWCU += p.WCU
			}
		}
		if most := float64(r.instances) + 0.02*float64(n); usageWCU > most {
			t.Errorf("N=%d: the usage shards took %.0f WCU, want at most %.0f (one per Lambda instance, %d, and 0.02 per node-run)", n, usageWCU, most, r.instances)
		}
		for _, p := range r.partitions {
			if n < minModelJob {
				break // a job this small cannot run at the target rate for long: logged only
			}
			w, rd := p.WCU/float64(n)*TargetRate, p.RCU/float64(n)*TargetRate
			if w > partitionWCULimit || rd > partitionRCULimit {
				t.Errorf("N=%d: partition key %s %s would take %.0f WCU/s and %.0f RCU/s at %.0f node-runs/s (limits %.0f and %.0f)",
					n, indexName(p.Index), p.PK, w, rd, TargetRate, partitionWCULimit, partitionRCULimit)
			}
		}
	}
	t.Logf("the hottest partition keys: units per node-run, and a second at %.0f node-runs/s (limits %.0f WCU/s and %.0f RCU/s per key)\n%s",
		TargetRate, partitionWCULimit, partitionRCULimit, hottestKeysTable(runs, 8))
	t.Logf("the runs (this machine: %d CPUs)\n%s", runtime.NumCPU(), runsTable(runs))
	for i := 1; i < len(runs); i++ {
		small, big := runs[0], runs[i]
		if big.wcuPerRun > small.wcuPerRun*growthFactor+growthSlack || big.rcuPerRun > small.rcuPerRun*growthFactor+growthSlack {
			t.Errorf("work per node-run grows with N: %.2f WCU and %.2f RCU at N=%d, %.2f and %.2f at N=%d (allowed: %.2f× + %.2f)",
				small.wcuPerRun, small.rcuPerRun, small.n, big.wcuPerRun, big.rcuPerRun, big.n, growthFactor, growthSlack)
		}
	}
}

func indexName(index string) string {
	if index == "" {
		return "table"
	}
	return "index " + index
}

// runCapacity brings up n simulated agents on a fresh stand-in, runs bench::noop on all of
// them, and returns what the job cost.
func runCapacity(t *testing.T, n int) capacityRun {
	t.Helper()
	c := newCloud(t, capacityLimits()...)
	// The enrolment route has no authorizer (infra/stack.EnrollRoute): straight to the api
	// function; every other request through the HTTP API stand-in.
	httpAPI, err := url.Parse(c.http.URL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(httpAPI)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/baton/v1/enroll" {
			c.fn["api"].invoke(func(app *awsapp.App) { app.API.ServeHTTP(w, r.WithContext(awsapp.WithFunction(r.Context(), "api"))) })
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	fdCtx, stopFD := context.WithCancel(context.Background())
	defer stopFD()
	peakFiles := fdWatch(fdCtx)
	setup := time.Now()
	f := startSimulator(t, n, fmt.Sprintf("cap%d-", n), c.ws.URL(), front.URL, c.token)
	defer func() {
		if err := f.Stop(); err != nil {
			t.Errorf("simulator: %v\n%s", err, f.lastLines())
		}
	}()
	ports := map[string]string{}
	for name, u := range map[string]string{"websocket": c.ws.URL(), "http": c.http.URL(), "front": front.URL} {
		if pu, err := url.Parse(u); err == nil {
			ports[pu.Port()] = name
		}
	}
	report := time.Now()
	for deadline := time.Now().Add(10 * time.Minute); f.Connected() < n; {
		if err := f.Err(); err != nil {
			t.Fatal(err)
		}
		if time.Since(report) > 20*time.Second {
			report = time.Now()
			ws := c.ws.Stats()
			t.Logf("N=%d: %s: %d agents connected; the stand-in: %d open, %d refused, throttles %v; the agents' warnings %v; open files %d: %s",
				n, time.Since(setup).Round(time.Second), f.Connected(), ws.OpenConnections, ws.Rejected, ws.LambdaThrottles, f.Warnings(), openFiles(), socketCensus(ports))
		}
		if time.Now().After(deadline) {
			ws := c.ws.Stats()
			t.Fatalf("N=%d: %d agents connected after %s; the stand-in: %d open connections, %d upgrades refused, throttles %v; the simulator:\n%s",
				n, f.Connected(), time.Since(setup).Round(time.Second), ws.OpenConnections, ws.Rejected, ws.LambdaThrottles, f.lastLines())
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
	connected := time.Since(setup)
	t.Logf("N=%d: the simulator: %s", n, f.readyLine())
	// Connected, and facts in: each agent's facts bring its pending work on AWS, so a job
	// started before they arrive would wait for them.
	eventually(t, "every agent's facts", 5*time.Minute, func() bool {
		runs, _ := f.NodeRuns()
		return runs == 0 && c.ws.Stats().Invocations["$default"] >= n
	})
	settled := time.Since(setup)
	ws := c.ws.Stats()
	t.Logf("N=%d: agents enrolled and connected after %s, facts in after %s; %d open connections at the stand-in, %d upgrades refused (throttled invocations %v); this process's open files at most %d so far",
		n, connected.Round(time.Millisecond), time.Since(setup).Round(time.Millisecond), ws.OpenConnections, ws.Rejected, ws.LambdaThrottles, peakFiles())
	notConnected := 0
	for _, name := range f.Names() {
		if node, err := c.probe.GetNode(t.Context(), name); err != nil || !node.Connected {
			notConnected++
			if notConnected < 3 {
				t.Logf("%s: connected %v over %s since %s (%v)", name, node.Connected, node.Connection, node.ConnectedAt.Format(time.RFC3339Nano), err)
			}
		}
	}
	t.Logf("N=%d: %d agents connected by the fleet's count are not connected in the inventory", n, notConnected)
	c.paused.Store(true)
	defer c.paused.Store(false)
	before := c.usage()
	c.meter.RecordPartitions()
	start := time.Now()
	ref, err := c.api.RunTask(t.Context(), client.TaskRequest{Task: "bench::noop", Scope: client.Scope{Nodes: f.Names()}})
	if err != nil {
		t.Fatal(err)
	}
	created := time.Since(start)
	id, _ := strconv.ParseInt(ref.Name, 10, 64)
	var ran time.Duration
	// The scheduled sweep stays paused while the job runs (what is measured is the job's
	// own work), but for a job that stopped moving: a node whose request did not go out, a
	// refill that failed under load — what the sweep (every minute on AWS) is there to
	// move on. Each such sweep is counted and logged.
	sweeps, lastRuns, lastMove := 0, int64(-1), time.Now()
	for deadline := time.Now().Add(time.Duration(n)*20*time.Millisecond + 2*time.Minute); ; {
		runs, _ := f.NodeRuns()
		if runs == int64(n) && ran == 0 {
			ran = time.Since(start)
		}
		// Moving: the fleet runs nodes, or the functions record their results (which queue
		// for the wsdefault instances on this machine long after the fleet ran them).
		counts, _ := c.probe.JobCounts(t.Context(), id)
		if progress := runs + int64(counts.Total()-counts.Unfinished()); progress != lastRuns {
			lastRuns, lastMove = progress, time.Now()
		} else if time.Since(lastMove) > stallSweep {
			sweeps++
			c.meter.AddInvocation("sweep")
			c.fn["sweep"].invoke(func(app *awsapp.App) {
				if err := app.Orchestrator.Sweep(awsapp.WithFunction(t.Context(), "sweep")); err != nil {
					t.Logf("sweep: %v", err)
				}
			})
			lastMove = time.Now()
		}
		j, err := c.probe.GetJob(t.Context(), id)
		if err == nil && j.State.Terminal() && c.queue.pending.Load() == 0 {
			break
		}
		if time.Now().After(deadline) {
			counts, _ := c.probe.JobCounts(t.Context(), id)
			t.Fatalf("job %s did not end: %s, nodes %v; the fleet ran %d of %d; %d dispatch messages pending", ref.Name, j.State, counts, runs, n, c.queue.pending.Load())
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	c.kicks.Wait()
	elapsed := time.Since(start)
	t.Logf("N=%d: job created (POST answered) after %s, every node ran by %s, job ended after %s; %d sweeps for a job that stopped moving for %s; this process's open files at most %d (limit %d)",
		n, created.Round(time.Millisecond), ran.Round(time.Millisecond), elapsed.Round(time.Millisecond), sweeps, stallSweep, peakFiles(), fileLimit())
	job, err := c.api.Job(t.Context(), ref.Name)
	if err != nil || job.State != "finished" || job.NodeStates["finished"] != n {
		t.Fatalf("job %s: %s %v (%v), want %d finished", ref.Name, job.State, job.NodeStates, err, n)
	}
	// The job's own account (baton_usage) must come to the meter's write units: usage that
	// result invocations left to be carried (awsapp.UsageCarry) is written within that time
	// once no result comes to carry it.
	jobWCU := func() float64 {
		u, err := c.probe.JobUsage(t.Context(), id) // unmetered: the test's reads cost the job nothing
		if err != nil {
			return -1
		}
		return u.WriteUnits
	}
	// (A sweep's own reads and writes — its listing of the unfinished jobs, say — are
	// charged to no job: the check is exact only for a run without one.)
	for deadline := time.Now().Add(awsapp.UsageCarry + 20*time.Second); sweeps == 0 && jobWCU() != c.usage().Sub(before).DynamoWCU; {
		if time.Now().After(deadline) {
			t.Fatalf("N=%d: the job's baton_usage says %.1f write units, the meter %.1f", n, jobWCU(), c.usage().Sub(before).DynamoWCU)
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
	t.Logf("N=%d: Lambda instances started (each runs one invocation at a time, as on AWS): wsdefault %d, dispatch %d, api %d, wsconnect %d",
		n, c.fn["wsdefault"].size(), c.fn["dispatch"].size(), c.fn["api"].size(), c.fn["wsconnect"].size())
	r := capacityRun{instances: c.fn["wsdefault"].size() + c.fn["dispatch"].size() + c.fn["api"].size(), n: n, connect: settled, elapsed: elapsed, usage: c.usage().Sub(before), partitions: c.meter.Partitions()}
	r.wcuPerRun, r.rcuPerRun = r.usage.DynamoWCU/float64(n), r.usage.DynamoRCU/float64(n)
	// The test's polling of GET /jobs is the client's, not the job's: one POST and its
	// authorizer call.
	r.usage.Invocations["http $default"], r.usage.Invocations["http authorizer"] = 1, 1
	r.costPerRun = r.usage.Cost(awsapp.USEast1) / float64(n)
	slices.SortFunc(r.partitions, func(a, b awsapp.PartitionUnits) int { return int(b.WCU - a.WCU) })
	if len(r.partitions) > 0 {
		r.hottestWrite = r.partitions[0]
	}
	for _, p := range r.partitions {
		if p.RCU > r.hottestRead.RCU {
			r.hottestRead = p
		}
	}
	return r
}
