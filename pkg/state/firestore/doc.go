// Package firestore is FARM's state store on Google Cloud Firestore (native mode). It implements
// state.Store and state.Ledger.
//
// # Data layout
//
//	farm_sources/{source}               one document per source (source percent-escaped, e.g.
//	                                    "argo%2Fprod"): source, lease_holder, lease_expires,
//	                                    cursor, index_parts, index_gens (generation of each
//	                                    part), index_runs, committed_at (index and
//	                                    index_encoding: the one-blob index before it was split,
//	                                    still read, dropped by the next commit)
//	farm_sources/{source}/index/{i}     part i of the fingerprint index (index.go): entries
//	                                    (gzip of the JSON Index of its keys), entries_encoding,
//	                                    runs, gen, updated_at
//	farm_sources/{source}/runs/{id}     one document per run; id is a hash of the run key (keys
//	                                    contain '/'): key, fingerprint, phase, tasks (gzip of the
//	                                    JSON task map, bytes), tasks_encoding, task_count,
//	                                    updated_at, expire_at
//	farm_ledger/{namespace}_{id}        one document per ledger entry (both parts escaped; a hash
//	                                    when too long): namespace, id, expire_at, data (bytes: what
//	                                    the consumer keeps, e.g. the span ids a message sent)
//
// expire_at (ExpireAtField) is a Timestamp for Firestore TTL policies on the collection groups
// RunsCollection and LedgerCollection. TTL deletion is lazy (typically within a day), so readers
// never rely on it: the Ledger ignores expired entries itself.
//
// Measured sizes (TestSizes): an active Argo entry costs ~37 bytes of the index, mostly its random
// uid; the index of 200,000 active runs takes 64 parts of at most ~123 KB (12% of the 1 MiB
// document limit); there is no ceiling, parts double as the index grows. A run of 5,000 tasks
// takes about 53 KB.
//
// # Costs, per call (as counted by Usage, the way Firestore bills)
//
//	Acquire      1 read (transaction) + 1 write, or 1 read when the lease is held; plus 1 read
//	             per index part this store does not hold at its committed generation (all of
//	             them on an instance's first poll, none while one instance polls)
//	Release      1 read + 1 write (0 writes when not the holder)
//	LoadRuns     1 read per distinct key, present or not, in GetAll batches of 300
//	WriteRuns    1 write per run (BulkWriter): the engine stores each published batch at once
//	Commit       1 write per run (BulkWriter) + 1 write per index part that changed + 1 read
//	             + 1 write (transaction); +1 read when the parts exceed 4 MiB (lease check)
//	Load         1 read per distinct id (GetAll batches of 300)
//	Record       1 write per entry (BulkWriter)
//
// A poll that changes n runs therefore costs n+2 reads and n+2+p writes, p ≤ n the index parts
// it changed (a part that only loses inactive entries is not rewritten); a transaction retried
// after contention adds its reads again.
package firestore
