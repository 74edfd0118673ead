// Package farm is the module's root package: the only package the Cloud Functions Go buildpack
// builds. It registers every FARM function; each deployment picks one by its entry point. The
// functions themselves live under functions/, their logic under pkg/.
package farm

import (
	"github.com/GoogleCloudPlatform/functions-framework-go/functions"

	"github.com/farmobs/farm/functions/bigquerysink"
	"github.com/farmobs/farm/functions/pollairflow"
	"github.com/farmobs/farm/functions/pollargo"
	tracefn "github.com/farmobs/farm/functions/trace"
)

func init() {
	functions.HTTP("PollArgo", pollargo.Handle)
	functions.HTTP("PollAirflow", pollairflow.Handle)
	functions.CloudEvent("Trace", tracefn.Handle)
	functions.CloudEvent("BigQuerySink", bigquerysink.Handle)
}
