# tflint configuration (.ci/terraform.sh). The google ruleset is built from source into
# TFLINT_PLUGIN_DIR (.ci/tools.sh): `tflint --init` would download it, which CI machines cannot.
config {
  call_module_type = "none"
}

plugin "terraform" {
  enabled = true
  preset  = "all"
}

plugin "google" {
  enabled = true
}
