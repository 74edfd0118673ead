package state

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// ErrInvalid marks a call a store refuses because of its arguments (an empty source name, a
// negative lease, a run without a key…). Retrying it cannot succeed.
var ErrInvalid = errors.New("invalid state store argument")

// MaxNameBytes bounds source names, holders, run keys, ledger namespaces and ids, so that every
// derived Firestore document id stays well below its 1,500-byte limit.
const MaxNameBytes = 400

// CheckName refuses an empty, oversized or non-UTF-8 name; what says which argument it is.
func CheckName(what, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: %s is empty", ErrInvalid, what)
	case len(name) > MaxNameBytes:
		return fmt.Errorf("%w: %s is %d bytes, more than %d", ErrInvalid, what, len(name), MaxNameBytes)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: %s %q is not valid UTF-8", ErrInvalid, what, name)
	}
	return nil
}

// CheckAcquire validates the arguments of Store.Acquire.
func CheckAcquire(source, holder string, ttl time.Duration) error {
	if err := CheckName("source", source); err != nil {
		return err
	}
	if err := CheckName("lease holder", holder); err != nil {
		return err
	}
	if ttl <= 0 {
		return fmt.Errorf("%w: lease duration %s is not positive", ErrInvalid, ttl)
	}
	return nil
}

// CheckLease validates the source and holder of Release and Commit.
func CheckLease(source, holder string) error {
	if err := CheckName("source", source); err != nil {
		return err
	}
	return CheckName("lease holder", holder)
}

// CheckLoad validates the arguments of Store.LoadRuns.
func CheckLoad(source string, keys []string) error {
	if err := CheckName("source", source); err != nil {
		return err
	}
	return CheckNames("run key", keys)
}

// CheckLedger validates the arguments of Ledger.Load.
func CheckLedger(namespace string, ids []string) error {
	if err := CheckName("ledger namespace", namespace); err != nil {
		return err
	}
	return CheckNames("ledger id", ids)
}

// CheckRecord validates the arguments of Ledger.Record: entries need an expiry, and their data
// fits a document.
func CheckRecord(namespace string, entries map[string][]byte, expireAt time.Time) error {
	if err := CheckName("ledger namespace", namespace); err != nil {
		return err
	}
	for id, data := range entries {
		if err := CheckName("ledger id", id); err != nil {
			return err
		}
		if len(data) > MaxLedgerData {
			return fmt.Errorf("%w: ledger entry %s of %s has %d bytes of data, more than %d", ErrInvalid, id, namespace, len(data), MaxLedgerData)
		}
	}
	if expireAt.IsZero() {
		return fmt.Errorf("%w: ledger entries of %s need an expiry time", ErrInvalid, namespace)
	}
	return nil
}

// LeaseHeld returns the *LeaseHeldError that Acquire by holder at now gets when the lease is
// held by current until expires, or nil when holder may take it: the lease is free, expired
// (now >= expires), or already holder's.
func LeaseHeld(holder string, now time.Time, current string, expires time.Time) error {
	if current == "" || current == holder || !now.Before(expires) {
		return nil
	}
	return &LeaseHeldError{Holder: current, Expires: expires}
}

// LeaseLost is the ErrLeaseLost a Commit by holder gets when the source's lease is held by
// current until expires, or by nobody (current empty).
func LeaseLost(source, holder, current string, expires time.Time) error {
	if current == "" {
		return fmt.Errorf("%w: %s is not leased (holder %s)", ErrLeaseLost, source, holder)
	}
	return fmt.Errorf("%w: %s is now held by %s until %s, not by %s", ErrLeaseLost, source,
		current, expires.UTC().Format(time.RFC3339), holder)
}

// CheckRuns validates the runs given to Store.Commit: each has a valid key, and no key repeats
// (a run is written once per commit).
func CheckRuns(runs []*Run) error {
	seen := make(map[string]bool, len(runs))
	for i, r := range runs {
		if r == nil {
			return fmt.Errorf("%w: run %d is nil", ErrInvalid, i)
		}
		if err := CheckName("run key", r.Key); err != nil {
			return fmt.Errorf("run %d: %w", i, err)
		}
		if seen[r.Key] {
			return fmt.Errorf("%w: run %q is given twice", ErrInvalid, r.Key)
		}
		seen[r.Key] = true
	}
	return nil
}

// CheckNames validates a list of run keys or ledger ids.
func CheckNames(what string, names []string) error {
	for _, n := range names {
		if err := CheckName(what, n); err != nil {
			return err
		}
	}
	return nil
}

// Unique returns names without repeats, in first-seen order.
func Unique(names []string) []string {
	seen := make(map[string]bool, len(names))
	out := make([]string, 0, len(names))
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}
