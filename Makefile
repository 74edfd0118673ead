# FARM's commands. `make run` and `make test` are the two a newcomer needs.
.PHONY: run test vet bench fidelity package tf-validate help

help:
	@echo "make run          run FARM locally: every function in one process, embedded defaults"
	@echo "make test         vet + all tests with -race, against the Firestore and BigQuery emulators"
	@echo "make package      write the source archive that terraform deploys"
	@echo "make tf-validate  offline terraform fmt/validate/plan (builds OpenTofu once, cached)"

run:
	go run ./cmd/farm

test:
	./scripts/test.sh

vet:
	go vet ./...

package:
	go run ./cmd/farm package

tf-validate:
	./.ci/terraform.sh
