// Package firestore is FARM's state store on Google Cloud Firestore (native mode). It implements
// state.Store and state.Ledger.
//
// # Data layout
//
//	farm_sources/{source}               one document per source (source percent-escaped, e.g.
//	                                    "argo%2Fprod"): source, lease_holder, lease_expires,
//	                                    cursor, index (gzip of the JSON Index, bytes),
//	                                    index_encoding, index_runs, committed_at
//	farm_sources/{source}/runs/{id}     one document per run; id is a hash of the run key (keys
//	                                    contain '/'): key, fingerprint, phase, tasks (gzip of the
//	                                    JSON task map, bytes), tasks_encoding, task_count,
//	                                    updated_at, expire_at
//	farm_ledger/{namespace}_{id}        one document per handled id (both parts escaped; a hash
//	                                    when too long): namespace, id, expire_at
//
// expire_at (ExpireAtField) is a Timestamp for Firestore TTL policies on the collection groups
// RunsCollection and LedgerCollection. TTL deletion is lazy (typically within a day), so readers
// never rely on it: the Ledger ignores expired entries itself.
//
// Measured sizes (TestSizes): the index of 10,000 active Argo runs compresses to about 367 KB,
// 35% of the 1 MiB document limit (an active entry costs ~37 bytes, mostly its random uid, so
// about 27,000 active runs fit; Commit refuses a larger index with a clear error); a run of
// 5,000 tasks takes about 53 KB.
//
// # Costs, per call (as counted by Usage, the way Firestore bills)
//
//	Acquire      1 read (transaction) + 1 write, or 1 read when the lease is held
//	Release      1 read + 1 write (0 writes when not the holder)
//	LoadRuns     1 read per distinct key, present or not, in GetAll batches of 300
//	Commit       1 write per run (BulkWriter) + 1 read + 1 write (transaction)
//	Seen         1 read per distinct id
//	Record       1 write per distinct id
//
// A poll that changes n runs therefore costs n+2 reads and n+2 writes; a transaction retried
// after contention adds its reads again.
package firestore
