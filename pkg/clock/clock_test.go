package clock_test

import (
	"testing"
	"time"

	"github.com/farmobs/farm/pkg/clock"
)

func TestTickingMovesOnAtEveryReading(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := clock.NewTicking(t0, time.Second)
	for i := 1; i <= 3; i++ {
		if got, want := c.Now(), t0.Add(time.Duration(i)*time.Second); !got.Equal(want) {
			t.Fatalf("reading %d = %s, want %s", i, got, want)
		}
	}
}
