"""An external (Gatekeeper) policy's page in a browser: the engine badge, the source, the
partial list note, no edit buttons; axe-clean in both themes, at desktop and phone width."""

from __future__ import annotations

import json
from typing import Any

import pytest

from policies.external.parsing import CONSTRAINT_GROUP
from policies.external.reading import EngineRead
from policies.models import Policy
from policies.services.external import cluster_record_external
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_accessibility import _findings
from tests.browser.test_layout import _fleet
from tests.browser.test_operations_live import _log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _constraint() -> dict[str, Any]:
    violations = [
        {
            "enforcementAction": "deny",
            "kind": "Namespace",
            "name": f"team-{i:02}",
            "message": 'you must provide labels: {"owner"}',
        }
        for i in range(20)
    ]
    return {
        "apiVersion": "constraints.gatekeeper.sh/v1beta1",
        "kind": "K8sRequiredLabels",
        "metadata": {"name": "ns-must-have-owner"},
        "spec": {"enforcementAction": "deny"},
        "status": {
            "auditTimestamp": "2026-12-05T12:00:00Z",
            "totalViolations": 57,
            "violations": violations,
        },
    }


@pytest.mark.parametrize(("scheme", "width"), [("light", 1366), ("dark", 1366), ("light", 390)])
def test_external_policy_page_shows_its_engine_and_is_accessible(
    asgi_server: str, chromium: Any, scheme: str, width: int
) -> None:
    # given a cluster whose Gatekeeper audit found 57 violations and listed 20
    cluster, _ = _fleet()
    read = EngineRead(groups=[CONSTRAINT_GROUP], constraints=[_constraint()])
    cluster_record_external(cluster=cluster, read=read)
    policy = Policy.objects.get(team=cluster.team, source_engine="gatekeeper")
    context = chromium.new_context(
        bypass_csp=True, color_scheme=scheme, viewport={"width": width, "height": 800}
    )
    page = context.new_page()
    _log_in(page, asgi_server, "operator-on-call")
    page.get_by_role("heading", name="Fleet").wait_for()
    # when the operator opens the policy and its violations
    page.goto(f"{asgi_server}/policies/{policy.team.name}/{policy.name}/")
    page.locator("summary", has_text="57 violation(s) in Gatekeeper's audit").click()
    # then the engine, the source and Gatekeeper's cap are shown, and nothing to edit
    assert page.locator('h1 [data-field="engine"]').inner_text() == "Gatekeeper"
    assert (
        "K8sRequiredLabels/ns-must-have-owner" in page.locator('[data-field="source"]').inner_text()
    )
    note = page.locator('[data-field="listing-note"]').inner_text()
    assert note == "· 20 of 57 (Gatekeeper lists 20)"
    assert page.get_by_role("link", name="Edit").count() == 0
    assert page.get_by_role("button", name="Evaluate now").count() == 0
    assert page.get_by_role("cell", name="team-19", exact=False).count() == 1
    found = _findings(page)
    page.screenshot(path=str(ARTIFACTS / f"external-policy-{scheme}-{width}.png"), full_page=True)
    # the list shows the badge too
    page.goto(f"{asgi_server}/policies/?engine=gatekeeper")
    assert page.locator('[data-field="engine"]').first.inner_text() == "Gatekeeper"
    found += _findings(page)
    context.close()
    assert found == [], json.dumps(found, indent=1)
