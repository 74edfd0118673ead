// Package pollairflow is the PollAirflow function: Cloud Scheduler's empty POST polls the
// configured Airflow or Cloud Composer environment; a JSON body backfills a window (see
// poll.Handler for the contract).
package pollairflow

import (
	"net/http"

	"github.com/farmobs/farm/pkg/setup"
)

var handler = setup.PollHandler((*setup.App).AirflowEngine)

// Handle serves one request.
func Handle(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }
