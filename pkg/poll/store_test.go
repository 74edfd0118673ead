package poll_test

import (
	"path/filepath"
	"testing"

	"github.com/farmobs/farm/pkg/state"
	"github.com/farmobs/farm/pkg/state/filestore"
)

// newStore returns a fresh file store: both stores pass the same contract suite (statetest), so
// the engine's logic is tested on the fast one; the Argo and Airflow scenarios use Firestore.
func newStore(t *testing.T) state.Store {
	return filestore.New(filepath.Join(t.TempDir(), "state.json"))
}
