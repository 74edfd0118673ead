package bench

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// PricesDate is when the list prices below were taken (the project's reference on Google Cloud
// billing, checked against the pages cited): tier-1 regions, no free tier, no committed-use
// discount. This file is the only place in the code that holds a price.
const PricesDate = "2026-12-06"

// Pricing pages.
const (
	pageRun       = "https://cloud.google.com/run/pricing"
	pageFirestore = "https://cloud.google.com/firestore/pricing"
	pagePubSub    = "https://cloud.google.com/pubsub/pricing"
	pageBigQuery  = "https://cloud.google.com/bigquery/pricing"
	pageScheduler = "https://cloud.google.com/scheduler/pricing"
	pageNetwork   = "https://cloud.google.com/vpc/network-pricing"
)

// Price is one list price: USD per Per units of Unit (Quantity says Per units in words).
type Price struct {
	Name     string
	USD      float64
	Per      float64
	Unit     string
	Quantity string
	Page     string
}

// Each returns the price of one unit.
func (p Price) Each() float64 { return p.USD / p.Per }

// The prices a deployment of FARM is billed at.
var (
	// Cloud Run (a Cloud Run function is a Cloud Run service). Request-based billing: requests,
	// and CPU and memory while an instance handles requests, rounded up to 100 ms.
	PriceRunRequest = Price{"Cloud Run request (request-based billing)", 0.40, 1e6, "request", "1,000,000 requests", pageRun}
	PriceRunCPU     = Price{"Cloud Run CPU (request-based)", 0.000024, 1, "vCPU-second", "vCPU-second", pageRun}
	PriceRunMemory  = Price{"Cloud Run memory (request-based)", 0.0000025, 1, "GiB-second", "GiB-second", pageRun}
	// Instance-based billing ("CPU always allocated": the trace service with the DataDog sidecar)
	// charges the whole instance lifetime and no request fee.
	PriceRunCPUInstance    = Price{"Cloud Run CPU (instance-based)", 0.000018, 1, "vCPU-second", "vCPU-second", pageRun}
	PriceRunMemoryInstance = Price{"Cloud Run memory (instance-based)", 0.000002, 1, "GiB-second", "GiB-second", pageRun}
	// Firestore Standard edition, regional location (multi-region is about double).
	PriceFirestoreRead   = Price{"Firestore document read", 0.03, 1e5, "read", "100,000 reads", pageFirestore}
	PriceFirestoreWrite  = Price{"Firestore document write", 0.09, 1e5, "write", "100,000 writes", pageFirestore}
	PriceFirestoreDelete = Price{"Firestore document delete (TTL deletes too)", 0.01, 1e5, "delete", "100,000 deletes", pageFirestore}
	// Pub/Sub throughput: publish and each subscription's delivery counted separately.
	PricePubSub = Price{"Pub/Sub throughput", 40, 1 << 40, "byte", "TiB", pagePubSub}
	// BigQuery legacy streaming inserts (what the sink uses).
	PriceBigQueryStreaming = Price{"BigQuery streaming insert", 0.01, 200e6, "byte", "200 MB (10^6 bytes each)", pageBigQuery}
	PriceSchedulerJob      = Price{"Cloud Scheduler job", 0.10, 1, "job-month", "job a month", pageScheduler}
	// Premium Tier internet egress, to North America, 1 GiB to 1 TiB a month (the first GiB free).
	PriceInternetEgress = Price{"Internet egress (Premium Tier, 1 GiB-1 TiB)", 0.12, 1 << 30, "byte", "GiB", pageNetwork}
)

// Billing rules that go with the prices.
const (
	RunBillingGranularityMs = 100  // Cloud Run request-based time is rounded up to 100 ms
	PubSubMinRequestBytes   = 1000 // Pub/Sub bills at least 1,000 bytes per publish, pull or push request
	BigQueryMinRowBytes     = 1024 // a streamed row is billed as at least 1 KB
)

// Prices lists the table, for printing.
func Prices() []Price {
	return []Price{PriceRunRequest, PriceRunCPU, PriceRunMemory, PriceRunCPUInstance, PriceRunMemoryInstance,
		PriceFirestoreRead, PriceFirestoreWrite, PriceFirestoreDelete, PricePubSub, PriceBigQueryStreaming, PriceSchedulerJob, PriceInternetEgress}
}

// WritePrices prints the price table with its date and sources.
func WritePrices(w io.Writer) {
	fmt.Fprintf(w, "list prices of %s (tier-1 region, Firestore regional, no free tier, no discounts):\n", PricesDate)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, p := range Prices() {
		fmt.Fprintf(tw, "  %s\t$%g per %s\t%s\n", p.Name, p.USD, p.Quantity, p.Page)
	}
	_ = tw.Flush()
}
