# FARM's commands. `make run` and `make test` are the two a newcomer needs.
.PHONY: run test vet lint fuzz bench fidelity package tf-validate help

help:
	@echo "make run          run FARM locally: every function in one process, embedded defaults"
	@echo "make test         vet + all tests with -race, against the Firestore and BigQuery emulators"
	@echo "make lint         golangci-lint (.golangci.yml: import rules and checks; built once, cached)"
	@echo "make fuzz         run every fuzz target for FUZZTIME each (default 30s; make test runs their seeds)"
	@echo "make bench        measure polls against simulated estates (1k/10k Argo runs, Airflow), ~10 min"
	@echo "make fidelity     a simulated day with crashes, races and faults, compared with the truth, ~3 min"
	@echo "make package      write the source archive that terraform deploys"
	@echo "make tf-validate  offline terraform fmt/validate/plan (builds OpenTofu once, cached)"

run:
	go run ./cmd/farm

test:
	./scripts/test.sh

vet:
	go vet ./...

lint:
	./scripts/lint.sh

# Every decoder of outside input has a fuzz target; FUZZTIME=2m make fuzz runs each longer.
fuzz:
	./scripts/fuzz.sh

# Both run against the Firestore emulator (started if none runs, and then stopped afterwards).
# BENCH_FLAGS narrows the benchmark, e.g. make bench BENCH_FLAGS=-quick
bench:
	@go build -o .farm/farm-bench ./cmd/farm
	@started=; [ -n "$$FIRESTORE_EMULATOR_HOST" ] || ./scripts/firestore-emulator.sh status >/dev/null 2>&1 || started=1; \
	  [ -n "$$FIRESTORE_EMULATOR_HOST" ] || eval "$$(./scripts/firestore-emulator.sh start)"; \
	  ./.farm/farm-bench bench $(BENCH_FLAGS); rc=$$?; \
	  [ -z "$$started" ] || ./scripts/firestore-emulator.sh stop; exit $$rc

fidelity:
	@go build -o .farm/farm-bench ./cmd/farm
	@started=; [ -n "$$FIRESTORE_EMULATOR_HOST" ] || ./scripts/firestore-emulator.sh status >/dev/null 2>&1 || started=1; \
	  [ -n "$$FIRESTORE_EMULATOR_HOST" ] || eval "$$(./scripts/firestore-emulator.sh start)"; \
	  ./.farm/farm-bench fidelity $(FIDELITY_FLAGS); rc=$$?; \
	  [ -z "$$started" ] || ./scripts/firestore-emulator.sh stop; exit $$rc

package:
	go run ./cmd/farm package

tf-validate:
	./.ci/terraform.sh
