# Keelson: `make run` starts everything on embedded defaults, `make test` runs the checks.
.PHONY: run test test-unit kube-binaries bench vendor-static clean-var manage

run:
	@bash scripts/bootstrap.sh
	@.venv/bin/python -m fleet.launcher

test:
	@bash scripts/test.sh

# The unit lane (tests/unit/): pure logic in seconds, no service. Every service URL points at
# a closed port, so a test that needs PostgreSQL, Redis or RabbitMQ fails instead of using one;
# property tests try 100 random cases each instead of `make test`'s 1500.
UNIT_ENV = DATABASE_URL=postgres://unit@127.0.0.1:9/unreachable \
	REDIS_URL=redis://127.0.0.1:9/0 CELERY_BROKER_URL=amqp://unit:unit@127.0.0.1:9// \
	KEELSON_PROPERTY_EXAMPLES=100
test-unit:
	@bash scripts/bootstrap.sh dev
	@$(UNIT_ENV) .venv/bin/pytest -q tests/unit $(PYTEST_ARGS)

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
