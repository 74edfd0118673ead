package firestore

import "context"

// SetAfterRuns makes Commit call f between writing the runs and the commit transaction, to
// simulate a crash there.
func SetAfterRuns(s *Store, f func(ctx context.Context) error) { s.afterRuns = f }
