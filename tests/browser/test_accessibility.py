"""axe-core on every main page, in both themes: no serious or critical finding (issue 19).

axe-core is vendored for tests only (scripts/vendor-test-tools.sh), never served to users.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from applications.services import application_create, application_version_add
from policies.models import Policy
from policies.services.library import library_load
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_layout import _fleet, _git_repository
from tests.browser.test_operations_live import _log_in
from tests.placement.test_version_diff import V1, V2

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")
# What axe reports for a page: each violation's rule, impact and the first offending nodes.
RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 3).map(n => n.target.join(" ") + " :: " + n.failureSummary),
  }));
}"""


def _findings(page: Any) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(RUN)
    return [v for v in found if v["impact"] in BLOCKING]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_main_pages_have_no_serious_accessibility_findings(
    asgi_server: str, chromium: Any, scheme: str
) -> None:
    # given: a fleet with a cluster, cost, an operation, an application with two versions and
    # the policy library
    cluster, operation = _fleet()
    application = application_create(
        actor=None, team=cluster.team, name="web", namespace="web", manifests=V1
    )
    application_version_add(actor=None, application=application, manifests=V2)
    repository = _git_repository(cluster.team)
    library_load(team=cluster.team)
    policy = Policy.objects.filter(team=cluster.team).order_by("name").first()
    assert policy is not None
    # The pages' CSP (script-src 'self' + nonce) refuses an injected <script>: this context
    # alone bypasses it so that axe can be added; the pages themselves are unchanged.
    context = chromium.new_context(
        bypass_csp=True, color_scheme=scheme, viewport={"width": 1366, "height": 800}
    )
    page = context.new_page()
    pages = {
        "login": "/accounts/login/",
        "404": "/no-such-page/",
    }
    failures: dict[str, list[dict[str, Any]]] = {}
    for name, path in pages.items():
        page.goto(asgi_server + path)
        page.wait_for_load_state("load")
        if found := _findings(page):
            failures[name] = found
    _log_in(page, asgi_server, "operator-on-call")
    page.get_by_role("heading", name="Fleet").wait_for()
    signed_in = {
        "overview": "/",
        "clusters": "/clusters/",
        "cluster": f"/clusters/{cluster.name}/",
        "applications": "/applications/",
        "application": "/applications/web/?old=1&new=2",
        "policies": "/policies/",
        "policy": f"/policies/{policy.team.name}/{policy.name}/",
        "reports": "/policies/reports/",
        "cost": "/costs/?group_by=namespace",
        "operation": f"/operations/{operation.pk}/",
        "alerts": "/alerts/?state=resolved&state=firing",
        "alert rules": "/alerts/rules/",
        "silences": "/alerts/silences/",
        "git repositories": "/gitops/",
        "git repository": f"/gitops/{repository.pk}/",
        "404 signed in": "/clusters/no-such-cluster/",
    }
    for name, path in signed_in.items():
        # when: axe checks each page once it has loaded
        page.goto(asgi_server + path)
        page.wait_for_load_state("load")
        if found := _findings(page):
            failures[name] = found
        shot = ARTIFACTS / f"a11y-{scheme}-{name.replace(' ', '-')}.png"
        page.screenshot(path=str(shot), full_page=True)
    context.close()
    # then: nothing serious or critical
    assert failures == {}, json.dumps(failures, indent=1)
