"""Which applied changes roll out, and the monthly cost of a placement at unit prices
(expectations worked out by hand)."""

from __future__ import annotations

from decimal import Decimal

from gitops.preview import monthly_cost
from gitops.rollouts import needs_rollout

MANIFESTS = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: nginx, resources: {requests: {cpu: 50m, memory: 32Mi}}}
"""
PRICES = {"a": {"cpu_core_hour": Decimal("0.04"), "ram_gb_hour": Decimal("0.005")}}


def change(action: str, kind: str = "Application", **diff: object) -> dict[str, object]:
    return {"action": action, "kind": kind, "name": "web", "diff": diff}


def test_created_applications_and_what_runs_where_roll_out_a_description_does_not() -> None:
    assert needs_rollout(change("create"))
    assert needs_rollout(change("change", manifests={"diff": "…"}))
    assert needs_rollout(change("change", placement={"old": {}, "new": {"selector": "a=b"}}))
    assert needs_rollout(change("change", overrides={"old": [], "new": [{}]}))
    assert needs_rollout(change("change", rollout={"old": {}, "new": {"strategy": "rolling"}}))
    assert not needs_rollout(change("change", description={"old": "", "new": "x"}))
    assert not needs_rollout(change("unchanged"))
    assert not needs_rollout(change("prune"))
    assert not needs_rollout(change("create", kind="Policy"))


def testmonthly_cost_cost_is_requests_times_unit_prices_times_730_hours() -> None:
    # 2 replicas x 50m = 0.1 core x 0.04 = 0.004/h; 2 x 32 MiB = 67,108,864 bytes
    # = 0.067108864 GB x 0.005 = 0.00033554432/h; x 730 h = 2.92 + 0.2449473536
    assert monthly_cost(MANIFESTS, {"a": None}, PRICES) == Decimal("3.1649473536")
    # divided: 3 replicas on the cluster instead of the manifests' 2
    assert monthly_cost(MANIFESTS, {"a": 3}, PRICES) == Decimal("3.1649473536") * 3 / 2
    # a cluster without prices (no inventory yet) adds nothing; it is listed apart
    assert monthly_cost(MANIFESTS, {"a": None, "b": None}, {**PRICES, "b": None}) == Decimal(
        "3.1649473536"
    )
    assert monthly_cost("", {"a": None}, PRICES) == Decimal(0)
