# Keelson: `make run` starts everything on embedded defaults, `make test` runs the checks.
.PHONY: run test kube-binaries bench vendor-static clean-var manage

run:
	@bash scripts/bootstrap.sh
	@.venv/bin/python -m fleet.launcher

test:
	@bash scripts/test.sh

bench:
	@bash scripts/bootstrap.sh dev
	@.venv/bin/python -m benchmarks $(BENCH_ARGS)

kube-binaries:
	@bash scripts/kube-binaries.sh

vendor-static:
	@bash scripts/vendor-static.sh

clean-var:
	rm -rf var/

# Run a management command against the instance `make run` started: make manage CMD="keelson_ping"
manage:
	@bash scripts/manage.sh $(CMD)
