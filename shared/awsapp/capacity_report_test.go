package awsapp_test

import (
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/baton-run/baton/shared/awsapp"
)

// keyShare is how much of a partition's limits a key would take at TargetRate: the larger of
// its write and read shares (1 = at the limit).
func keyShare(p awsapp.PartitionUnits, n int) float64 {
	return max(p.WCU/float64(n)*TargetRate/partitionWCULimit, p.RCU/float64(n)*TargetRate/partitionRCULimit)
}

// hottestKeysTable lays out the hottest partition keys of the runs side by side: the top
// keys of each run by share of the limits at TargetRate, with each run's units per node-run
// and the units a second they would take at TargetRate.
func hottestKeysTable(runs []capacityRun, top int) string {
	type key struct{ index, pk string }
	byRun := make([]map[key]awsapp.PartitionUnits, len(runs))
	var keys []key
	for i, r := range runs {
		byRun[i] = map[key]awsapp.PartitionUnits{}
		for _, p := range r.partitions {
			byRun[i][key{p.Index, p.PK}] = p
		}
		ps := slices.Clone(r.partitions)
		slices.SortFunc(ps, func(a, b awsapp.PartitionUnits) int {
			sa, sb := keyShare(a, r.n), keyShare(b, r.n)
			switch {
			case sa > sb:
				return -1
			case sa < sb:
				return 1
			}
			return strings.Compare(a.PK, b.PK)
		})
		for _, p := range ps[:min(top, len(ps))] {
			if k := (key{p.Index, p.PK}); !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(w, "partition key\t")
	for _, r := range runs {
		fmt.Fprintf(w, "N=%d WCU/run\tRCU/run\tWCU/s\tRCU/s\tof limit\t", r.n)
	}
	fmt.Fprintln(w)
	for _, k := range keys {
		name := k.pk
		if k.index != "" {
			name = k.index + " " + k.pk
		}
		fmt.Fprintf(w, "%s\t", name)
		for i, r := range runs {
			p := byRun[i][k]
			n := float64(r.n)
			fmt.Fprintf(w, "%.3f\t%.3f\t%.0f\t%.0f\t%.0f%%\t", p.WCU/n, p.RCU/n, p.WCU/n*TargetRate, p.RCU/n*TargetRate, keyShare(p, r.n)*100)
		}
		fmt.Fprintln(w)
	}
	_ = w.Flush()
	return b.String()
}

// runsTable summarizes each run: its phases, its units and cost per node-run, and its
// hottest key's share of the limits at TargetRate.
func runsTable(runs []capacityRun) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "N\tenrol+connect\tjob\tWCU/run\tRCU/run\t$/M node-runs\thottest key\tof limit\t")
	for _, r := range runs {
		if len(r.partitions) == 0 {
			continue
		}
		hot := slices.MaxFunc(r.partitions, func(a, b awsapp.PartitionUnits) int {
			sa, sb := keyShare(a, r.n), keyShare(b, r.n)
			switch {
			case sa > sb:
				return 1
			case sa < sb:
				return -1
			}
			return 0
		})
		fmt.Fprintf(w, "%d\t%s\t%s\t%.2f\t%.2f\t%.2f\t%s\t%.0f%%\t\n", r.n, r.connect.Round(time.Second), r.elapsed.Round(time.Second),
			r.wcuPerRun, r.rcuPerRun, r.costPerRun*1e6, strings.TrimSpace(hot.Index+" "+hot.PK), keyShare(hot, r.n)*100)
	}
	_ = w.Flush()
	return b.String()
}
