// Package pollargo is the PollArgo function: Cloud Scheduler's empty POST polls the configured
// Argo Server; a JSON body backfills a window (see poll.Handler for the contract).
package pollargo

import (
	"net/http"

	"github.com/farmobs/farm/pkg/setup"
)

var handler = setup.PollHandler((*setup.App).ArgoEngine)

// Handle serves one request.
func Handle(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }
