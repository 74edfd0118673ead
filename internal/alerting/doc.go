// Package alerting holds the offline checks of FARM's alerting. It ships nothing: the
// interpreters the checks need (HCL, the Logging filter language, DataDog queries, strict
// decoding) are test code too, in its *_support_test.go files.
//
// FARM's alerting lives in terraform: the DataDog monitors, dashboard and span-based metric of
// terraform/datadog (a root module of its own, whose provider cannot be installed on CI machines,
// so it cannot be validated or planned there), and the Google Cloud log-based metrics and alert
// policies of terraform/monitoring.tf. The tests of this package:
//
//   - evaluate the DataDog root the way terraform would (Module: variables with their types,
//     optional attributes, defaults and validations; locals; templatefile), for the default
//     variables and for every knob turned, and decode each monitor, dashboard and span-based
//     metric strictly into the official models of datadog-api-client-go (DecodeStrict);
//   - fail when a query names an operation, tag or metric the trace function does not emit: the
//     names are taken from the spans pkg/apm really sends to a local agent (internal/ddagent) and
//     from its exported operation constants;
//   - evaluate monitoring.tf's log-based metrics and check each filter (LogFilter, a subset of
//     the Logging query language) and extractor against the summary lines the real poll handler
//     writes, as Cloud Logging stores them (FromStructuredLine).
//
// Run them with `go test ./internal/alerting/...`; nothing here needs a network or an account.
package alerting
