"""Transient and permanent provider errors (pure logic: a scripted provider, no cluster)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clusters.models import ClusterProvisioning
from clusters.providers.base import ActionContext, Capabilities, ClusterSpec
from clusters.providers.registry import _PROVIDERS, register_provider
from clusters.services.provisioning import cluster_create, cluster_lifecycle_run
from core.celery import PermanentError, TransientError
from operations.models import Operation
from tests.factories import make_team

pytestmark = pytest.mark.django_db


class ScriptedProvider:
    """Raises what it is told to, attempt after attempt."""

    name = "scripted"

    def __init__(self) -> None:
        self.script: list[Exception | None] = []
        self.attempts = 0

    def capabilities(self) -> Capabilities:
        return Capabilities()

    def validate(self, spec: ClusterSpec) -> None:
        return None

    def provision(self, ctx: ActionContext, spec: ClusterSpec) -> None:
        self.attempts += 1
        ctx.progress(50, f"attempt {self.attempts}")
        outcome = self.script.pop(0)
        if outcome is not None:
            raise outcome

    scale = upgrade = delete = provision


@pytest.fixture
def provider() -> Iterator[ScriptedProvider]:
    scripted = ScriptedProvider()
    register_provider(scripted)
    yield scripted
    _PROVIDERS.pop("scripted")


def _create() -> Operation:
    spec = ClusterSpec.from_json(
        {
            "provider": "scripted",
            "region": "x",
            "kubernetes_version": "1.29.0",
            "node_pools": [{"name": "a", "instance_type": "m5.large", "count": 1}],
        }
    )
    return cluster_create(actor=None, team=make_team(), name="scripted-1", spec=spec)


def test_transient_errors_are_retried_then_the_work_completes(provider: ScriptedProvider) -> None:
    provider.script = [TransientError("API server restarting"), None]
    operation = _create()
    with pytest.raises(TransientError):
        cluster_lifecycle_run(operation_id=operation.pk, final_attempt=False)
    operation.refresh_from_db()
    assert operation.state == "running"
    cluster_lifecycle_run(operation_id=operation.pk, final_attempt=False)
    operation.refresh_from_db()
    assert operation.state == "succeeded"
    log = list(operation.log_lines.values_list("text", flat=True))
    assert "Will retry: API server restarting" in log
    assert provider.attempts == 2


def test_the_last_retry_and_permanent_errors_fail_with_the_reason(
    provider: ScriptedProvider,
) -> None:
    provider.script = [TransientError("still down")]
    operation = _create()
    cluster_lifecycle_run(operation_id=operation.pk, final_attempt=True)
    operation.refresh_from_db()
    assert operation.state == "failed"
    assert operation.error == "Gave up after retries: still down"
    assert ClusterProvisioning.objects.get().lifecycle == "failed"


def test_a_permanent_error_fails_at_once(provider: ScriptedProvider) -> None:
    provider.script = [PermanentError("quota exceeded in eu-west-1")]
    operation = _create()
    cluster_lifecycle_run(operation_id=operation.pk, final_attempt=False)
    operation.refresh_from_db()
    assert operation.state == "failed"
    assert operation.error == "quota exceeded in eu-west-1"
