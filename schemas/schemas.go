// Package schemas embeds FARM's schema files — the RunDelta JSON Schema, the BigQuery table
// schemas and the views — so the local runner can create tables on a BigQuery emulator without
// knowing where the repository is. Terraform reads the same files from disk.
package schemas

import "embed"

// FS holds *.json and views/*.sql.
//
//go:embed *.json views/*.sql
var FS embed.FS
