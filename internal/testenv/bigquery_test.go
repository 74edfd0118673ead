package testenv_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"

	"github.com/farmobs/farm/internal/testenv"
)

// TestBigQueryEmulators starts two emulators: each serves its own data, and one stopped refuses
// connections while the other keeps answering.
func TestBigQueryEmulators(t *testing.T) {
	a := testenv.StartBigQuery(t, "proj-a")
	b := testenv.StartBigQuery(t, "proj-a")
	if a.Endpoint == b.Endpoint {
		t.Fatalf("both emulators listen on %s", a.Endpoint)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	ca, cb := a.Client(t), b.Client(t)
	if err := ca.Dataset("only_in_a").Create(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if names := datasets(ctx, t, ca); len(names) != 1 || names[0] != "only_in_a" {
		t.Errorf("emulator a has datasets %v, want [only_in_a]", names)
	}
	if names := datasets(ctx, t, cb); len(names) != 0 {
		t.Errorf("emulator b has datasets %v, want none: emulators must not share data", names)
	}
	_, err := ca.Dataset("missing").Metadata(ctx)
	var api *googleapi.Error
	if !errors.As(err, &api) || api.Code != http.StatusNotFound {
		t.Errorf("missing dataset: got %v, want a 404 like BigQuery's", err)
	}

	a.Stop()
	a.Stop() // a second stop, and the cleanup's, do nothing
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	if _, err := ca.Dataset("only_in_a").Metadata(short); err == nil {
		t.Error("the stopped emulator still answers")
	}
	if names := datasets(ctx, t, cb); len(names) != 0 {
		t.Errorf("emulator b after a stopped: %v", names)
	}
}

func datasets(ctx context.Context, t *testing.T, c *bigquery.Client) []string {
	t.Helper()
	var names []string
	it := c.Datasets(ctx)
	for {
		ds, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, ds.DatasetID)
	}
}
