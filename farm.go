// Package farm is the module's root package: the only package the Cloud Functions Go buildpack
// builds. It registers every FARM function; each deployment picks one by its entry point. The
// functions themselves live under functions/, their logic under pkg/.
package farm

import (
	"github.com/GoogleCloudPlatform/functions-framework-go/functions"

	"github.com/farmobs/farm/functions/bigquerysink"
	"github.com/farmobs/farm/functions/pollairflow"
	"github.com/farmobs/farm/functions/pollargo"
	"github.com/farmobs/farm/functions/trace"
)

func init() {
	functions.HTTP("PollArgo", pollargo.Handle)
	functions.HTTP("PollAirflow", pollairflow.Handle)
	// The consumers are HTTP functions that read the Pub/Sub push themselves (pkg/push), so that
	// a malformed delivery is dead-lettered by FARM instead of refused by the framework.
	functions.HTTP("Trace", trace.Handle)
	functions.HTTP("BigQuerySink", bigquerysink.Handle)
}
