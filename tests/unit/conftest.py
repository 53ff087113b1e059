"""The unit lane: pure logic, no PostgreSQL, Redis, RabbitMQ nor Kubernetes.

`make test-unit` runs this directory with every service URL pointing at a closed port;
pytest-django blocks database access here (no test asks for `db`), and the suite-wide
fixtures that touch Redis or the test database are replaced by no-ops below, so a test
that needs a service fails rather than passing by luck. `make test` runs these too.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    """No Redis cache to clear: unit tests do not use it."""


@pytest.fixture(scope="session", autouse=True)
def _close_stray_connections() -> None:
    """No test database is created for the unit lane."""
