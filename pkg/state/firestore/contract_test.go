package firestore_test

import (
	"testing"

	"github.com/farmobs/farm/internal/statetest"
	"github.com/farmobs/farm/internal/testenv"
	"github.com/farmobs/farm/pkg/state"
	"github.com/farmobs/farm/pkg/state/firestore"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// newStore returns a store on a project of its own in the emulator. Contended transactions are
// slow on the emulator (it locks documents), hence more attempts than in production.
func newStore(t *testing.T, opts ...firestore.Option) *firestore.Store {
	return firestore.New(testenv.Firestore(t), append([]firestore.Option{firestore.WithMaxAttempts(20)}, opts...)...)
}

func TestContract(t *testing.T) {
	statetest.Run(t, func(t *testing.T) (state.Store, state.Ledger) {
		s := newStore(t)
		return s, s
	})
}

func BenchmarkPoll100(b *testing.B) {
	statetest.BenchmarkPoll(b, firestore.New(testenv.Firestore(b)), 100)
}
