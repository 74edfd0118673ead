package argo

// SetFullListingBudget lowers the node budget of s's full listings, so a test reaches it with a
// few workflows.
func SetFullListingBudget(s *Source, n int64) { s.fullBudget = n }

// SlimFields and ListFields are the fields of the two listings' pages.
var SlimFields, ListFields = slimFields, listFields

// PendingLen is how many listed workflows s keeps for Load.
func PendingLen(s *Source) int { return s.pending.len() }
