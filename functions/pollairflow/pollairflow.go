// Package pollairflow is the PollAirflow function: Cloud Scheduler's empty POST polls the
// configured Airflow or Cloud Composer environment; a JSON body backfills a window (see
// poll.Handler for the contract).
package pollairflow

import (
	"context"
	"net/http"

	"github.com/farmobs/farm/pkg/poll"
	"github.com/farmobs/farm/pkg/setup"
)

var handler = poll.Handler(func(ctx context.Context) (poll.Poller, error) {
	app, err := setup.Default()
	if err != nil {
		return nil, err
	}
	return app.AirflowEngine(ctx)
}, poll.HTTPOptions{})

// Handle serves one request.
func Handle(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }
