// Package filestore is FARM's embedded state store for the local runner: state.Store and
// state.Ledger with the same semantics as the Firestore store (both pass statetest), persisted to
// one JSON file (leases, cursors, the ledger and the generations of the index parts) and, beside
// it in "<file>.d/", one file per run and the parts of each source's index (split.go): a poll
// rewrites the runs and index parts it changed, not the whole estate.
//
// Every call reads the file (or reuses what it parsed, when the file is unchanged), applies its
// change, and replaces the file atomically: a temporary file in the same directory is written,
// synced and renamed over the old one, so after a crash the file is the old or the new version,
// never a mix. The file is created 0600, its directory 0700.
//
// Calls are serialised within a process by a mutex and across processes by an exclusive flock
// on a sibling "<file>.lock" (Unix). Without flock (other systems) use one process per file.
//
// A Commit writes its runs, then its index parts, then the state file: the cursor, index and lease
// are all or nothing; run files may be one commit ahead, as Firestore's run documents may. Expired
// ledger entries are dropped whenever the file is written, and a run whose ExpireAt has passed
// reads as absent, as a Firestore TTL policy would have deleted it. Usage counts operations the way the Firestore store does, so the
// poll engine reports comparable figures.
package filestore
