# FARM's state: a native-mode Firestore database with TTL policies on the expiry field of run
# documents and ledger entries (pkg/state/firestore writes the field on both).

resource "google_firestore_database" "farm" {
  name        = local.firestore_database
  location_id = local.firestore_location
  type        = "FIRESTORE_NATIVE"

  delete_protection_state = var.deletion_protection ? "DELETE_PROTECTION_ENABLED" : "DELETE_PROTECTION_DISABLED"
  deletion_policy         = var.deletion_protection ? "PREVENT" : "DELETE"

  depends_on = [google_project_service.apis]
}

resource "google_firestore_field" "ttl" {
  for_each = toset(local.firestore_ttl_collections)

  database   = google_firestore_database.farm.name
  collection = each.key # a collection group: run documents live under each source document
  field      = local.firestore_ttl_field

  ttl_config {}

  # No single-field index on the expiry timestamp: nothing queries it, and an index on an
  # ever-increasing value only costs writes.
  index_config {}
}
