package state_test

import (
	"fmt"
	"testing"

	"github.com/farmobs/farm/pkg/state"
)

func TestPartsFor(t *testing.T) {
	for _, tc := range []struct{ entries, perPart, want int }{
		{0, 4000, 0},
		{1, 4000, 1},
		{4000, 4000, 1},
		{4001, 4000, 2},
		{12001, 4000, 4},
		{200_000, 4000, 64},
	} {
		if got := state.PartsFor(tc.entries, tc.perPart); got != tc.want {
			t.Errorf("PartsFor(%d, %d) = %d, want %d", tc.entries, tc.perPart, got, tc.want)
		}
	}
}

// Every entry lands in exactly one part, the one PartOf names, and doubling the parts moves a key
// only to one of its two halves (i or i+n).
func TestSplit(t *testing.T) {
	idx := state.Index{}
	for i := range 1000 {
		idx[fmt.Sprintf("argo/prod/ns/uid-%d", i)] = state.IndexEntry{Fingerprint: fmt.Sprint(i), Active: i%2 == 0}
	}
	for _, n := range []int{1, 2, 8} {
		parts := idx.Split(n)
		total := 0
		for i, p := range parts {
			total += len(p)
			for k, v := range p {
				if state.PartOf(k, n) != i || idx[k] != v {
					t.Errorf("n=%d: %s in part %d, PartOf says %d", n, k, i, state.PartOf(k, n))
				}
				if j := state.PartOf(k, 2*n); j != i && j != i+n {
					t.Errorf("n=%d: %s moves from part %d to %d of %d", n, k, i, j, 2*n)
				}
			}
		}
		if total != len(idx) {
			t.Errorf("n=%d: parts hold %d entries, want %d", n, total, len(idx))
		}
	}
}

func TestOnlyDropsInactive(t *testing.T) {
	a := state.IndexEntry{Fingerprint: "1", Active: true}
	done := state.IndexEntry{Fingerprint: "2"}
	old := state.Index{"a": a, "done": done}
	for _, tc := range []struct {
		name string
		next state.Index
		want bool
	}{
		{"unchanged", state.Index{"a": a, "done": done}, true},
		{"an inactive entry leaves", state.Index{"a": a}, true},
		{"an active entry leaves", state.Index{"done": done}, false},
		{"an entry changes", state.Index{"a": {Fingerprint: "3", Active: true}, "done": done}, false},
		{"an entry arrives", state.Index{"a": a, "done": done, "new": a}, false},
		{"one leaves, another arrives", state.Index{"a": a, "new": done}, false},
	} {
		if got := state.OnlyDropsInactive(old, tc.next); got != tc.want {
			t.Errorf("%s: OnlyDropsInactive = %v, want %v", tc.name, got, tc.want)
		}
	}
}
