// Package argosim is a simulated Argo Server: an http.Handler that answers the read endpoints
// FARM uses exactly as Argo Server 3.6/3.7 does, over workflows that a test scripts or that a
// generated estate makes live on an injected clock. It is an independent implementation of the
// server side, written from upstream's sources (argoproj/argo-workflows v3.7:
// server/workflow/workflow_server.go, server/utils/list_options.go, persist/sqldb,
// server/workflow/store/sqlite_store.go, util/fields, workflow/util, workflow/controller).
//
// Three ways to use it:
//
//   - Scenario tests: NewServer, then Put, Update, SetNode, Archive, Delete, SetNodeStorage,
//     Retry, InjectFault and OnList to script exactly what the API shows, and serve it with
//     httptest.NewServer(srv).
//   - Estates for benchmarks and fidelity checks: NewEstate(srv, cfg) generates workflows of
//     realistic shapes and advances them whenever the clock moves (checked before every
//     request); Transitions is the ground truth of every state the API exposed.
//   - The local runner: NewDemo(clock.Real{}, seed) is a handful of lively demo pipelines.
//
// What the simulator reproduces, pitfalls included:
//
//   - GET /api/v1/workflows/{namespace} (empty: all namespaces) pages live rows then archived
//     rows, each by startedAt descending, with an integer offset in listOptions.continue
//     ("listOptions.continue must be int") and metadata.continue (empty on the last page); each
//     page is then re-sorted (unfinished first). A workflow inserted between two page requests
//     shifts the offsets, so rows repeat: clients de-duplicate by uid.
//   - A completed workflow, once archived, is listed from the archive: no status.nodes, no
//     resourceVersion, labelled workflow-archiving-status=Persisted. After argo retry it is
//     listed twice (live again, and archived).
//   - listOptions.fieldSelector accepts only metadata.namespace=, metadata.name= (with
//     nameFilter Exact|Contains|Prefix), spec.startedAt> and < (inclusive),
//     ext.showRemainingItemCount=; anything else is {"code":3,...} with HTTP 400, but an
//     unparseable time is {"code":13,...} with HTTP 500, as upstream. createdAfter and
//     finishedBefore (which running workflows always match) are supported.
//   - listOptions.labelSelector is parsed like Kubernetes (=, ==, !=, in, notin, exists, !,
//     gt, lt; comma is AND); negative operators match workflows without the label.
//   - fields trims answers with upstream's rules, quirks included (see fieldFilter).
//   - Zero times are null, not omitted; struct fields are never omitted ("spec":{}); an empty
//     list has "items":null; errors are grpc-gateway JSON {"code":N,"message":"..."}.
//   - status.compressedNodes (base64 of gzipped JSON) is served as is by the list endpoint and
//     decompressed by GET; offloaded nodes keep status.offloadNodeStatusVersion in lists.
//   - GET /api/v1/workflows/{ns}/{name} falls back to the archive for a deleted workflow (3.5.7+;
//     Options.NoArchiveFallback answers 404 instead); GET /api/v1/archived-workflows/{uid}
//     returns the full archived workflow; GET /api/v1/archived-workflows lists summaries.
//   - resourceVersion is cluster-wide and bumped by every write; generation by every spec or
//     status write; node ids and names follow upstream (NodeID, PodName).
package argosim
