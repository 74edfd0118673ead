package filestore_test

import (
	"path/filepath"
	"testing"

	"github.com/farmobs/farm/internal/statetest"
	"github.com/farmobs/farm/pkg/state"
	"github.com/farmobs/farm/pkg/state/filestore"
)

func TestContract(t *testing.T) {
	statetest.Run(t, func(t *testing.T) (state.Store, state.Ledger) {
		s := filestore.New(filepath.Join(t.TempDir(), "farm", "state.json"))
		return s, s
	})
}

func BenchmarkPoll100(b *testing.B) {
	statetest.BenchmarkPoll(b, filestore.New(filepath.Join(b.TempDir(), "state.json")), 100)
}
