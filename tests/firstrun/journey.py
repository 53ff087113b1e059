"""A new user's journey on the instance `make run` started (issue 19's acceptance), in
Debian's chromium: log in with the password `make run` printed, see the demo fleet become
Ready, create a one-node local cluster and follow its operation to the end, roll out the
demo application, create a policy and evaluate it now, generate a report and open its PDF,
look at this month's cost by namespace. Each step is photographed at 1440x900 and 390x844
into test-artifacts/journey/.

Waits poll the pages as a user would (reload, look again); their bounds are generous for a
2-core machine running four local control planes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playwright.sync_api import sync_playwright

from tests.browser.conftest import ARTIFACTS, CHROMIUM, LAUNCH_ARGS

SHOTS = ARTIFACTS / "journey"
if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

DESKTOP: ViewportSize = {"width": 1440, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}
DEMO_CLUSTERS = ("demo-eu", "demo-us", "demo-edge")  # keelson_demo_fleet's DEMO
DEMO_READY_WITHIN = 330.0
OPERATION_WITHIN = 300.0
ADMIN = re.compile(r"created admin account: user '([^']+)' password '([^']+)'")
RULES = """- name: no-host-network
  kind: object
  match: {kinds: [Pod]}
  expression: "!has(object.spec.hostNetwork) || !object.spec.hostNetwork"
"""


def admin_credentials(log: Path) -> tuple[str, str]:
    """The first administrator's name and password, as `make run` printed them once."""
    found = ADMIN.search(log.read_text(errors="replace"))
    assert found, "make run did not print the admin password"
    return found.group(1), found.group(2)


def shoot(page: Any, step: str) -> None:
    """The page as it is now, at desktop and phone sizes."""
    for label, size in (("1440x900", DESKTOP), ("390x844", PHONE)):
        page.set_viewport_size(size)
        page.screenshot(path=str(SHOTS / f"{step}-{label}.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def poll(page: Any, url: str, done: Callable[[], bool], *, within: float, what: str) -> None:
    """Open `url` until `done()` says the page shows what we wait for."""
    deadline = time.monotonic() + within
    while True:
        page.goto(url)
        page.wait_for_load_state("load")
        if done():
            return
        assert time.monotonic() < deadline, f"{what}: not within {within:.0f} s"
        time.sleep(5)


def follow_operation(page: Any, step: str) -> None:
    """On an operation's page: photograph it running, then wait for it to succeed."""
    page.wait_for_selector("#operation")
    shoot(page, f"{step}-running")
    operation = page.locator("#operation")
    deadline = time.monotonic() + OPERATION_WITHIN
    # The page follows the operation live (websocket); a reload now and then is the fallback
    # a user would use if the socket dropped.
    polls = 0
    while operation.get_attribute("data-state") not in ("succeeded", "failed", "canceled"):
        assert time.monotonic() < deadline, f"{step}: operation still running"
        time.sleep(3)
        polls += 1
        if polls % 10 == 0:
            page.reload()
    state = operation.get_attribute("data-state")
    shoot(page, f"{step}-done")
    assert state == "succeeded", f"{step}: operation {state}: {operation.inner_text()[:2000]}"


def _ready(page: Any, name: str) -> bool:
    row = page.locator("tr", has=page.get_by_role("link", name=name, exact=True))
    return bool(row.locator(".status-ready").count())


def run_journey(base: str, log: Path) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    username, password = admin_credentials(log)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
        page = context.new_page()
        try:
            _journey(page, base, username, password)
        except BaseException:
            page.screenshot(path=str(SHOTS / "failure.png"), full_page=True)
            raise
        finally:
            context.close()
            browser.close()


def _journey(page: Any, base: str, username: str, password: str) -> None:
    # 1. log in with the password `make run` printed
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    shoot(page, "01-login")
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Fleet").wait_for()
    shoot(page, "02-overview")

    # 2. the demo fleet becomes Ready
    poll(
        page,
        f"{base}/clusters/",
        lambda: all(_ready(page, name) for name in DEMO_CLUSTERS),
        within=DEMO_READY_WITHIN,
        what="the demo fleet Ready",
    )
    shoot(page, "03-demo-fleet-ready")
    page.goto(f"{base}/")
    page.get_by_role("heading", name="Fleet").wait_for()
    shoot(page, "04-overview-ready")

    # 3. a small local cluster, followed on its operation page to the end
    page.goto(f"{base}/clusters/create/")
    page.get_by_label("Name", exact=True).fill("journey-one")
    page.get_by_label("Team").select_option("platform")
    page.get_by_label("Region").fill("lab")
    page.get_by_label("Node pools").fill("workers m5.large 1")
    shoot(page, "05-create-cluster")
    page.get_by_role("button", name="Create").click()
    page.wait_for_url(re.compile(r"/operations/"))
    follow_operation(page, "06-provision")
    poll(
        page,
        f"{base}/clusters/",
        lambda: _ready(page, "journey-one"),
        within=120,
        what="journey-one Ready",
    )

    # 4. roll out the demo application
    page.goto(f"{base}/applications/demo-shop/")
    shoot(page, "07-application")
    page.get_by_role("button", name="Roll out").click()
    page.wait_for_url(re.compile(r"/operations/"))
    follow_operation(page, "08-rollout")

    # 5. a policy, evaluated now
    page.goto(f"{base}/policies/new/")
    page.get_by_label("Team").select_option("platform")
    page.get_by_label("Name", exact=True).fill("no-host-network")
    page.get_by_label("Rules").fill(RULES)
    shoot(page, "09-new-policy")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Policy no-host-network created.").wait_for()
    page.get_by_role("button", name="Evaluate now").click()
    # Every cluster of the team: the three demo clusters and journey-one.
    page.get_by_text("Evaluated on 4 cluster(s).").wait_for(timeout=120_000)
    shoot(page, "10-policy-evaluated")

    # 6. a report, generated now, its PDF opened
    page.goto(f"{base}/policies/reports/")
    page.get_by_label("Team").select_option("platform")
    page.get_by_label("Name", exact=True).fill("journey-compliance")
    page.get_by_label("Scope", exact=True).select_option("fleet")
    page.get_by_role("button", name="Schedule").click()
    page.get_by_text("Report scheduled.").wait_for()
    row = page.locator("tr", has_text="journey-compliance")
    row.get_by_role("button", name="Generate now").click()
    page.get_by_text("Report journey-compliance generated.").wait_for(timeout=120_000)
    shoot(page, "11-report-generated")
    pdf = page.get_by_role("link", name="PDF").first
    with page.expect_download() as download:
        pdf.click()
    saved = SHOTS / "report.pdf"
    download.value.save_as(str(saved))
    assert saved.read_bytes().startswith(b"%PDF-"), "the report's PDF is not a PDF"

    # 7. this month's cost by namespace: the clusters the rollout reached collected now (a
    # scheduled pass reads full inventories only every few intervals), then cost computed now
    for name in ("demo-eu", "demo-us"):  # demo-shop's placement: env=prod
        page.goto(f"{base}/clusters/{name}/")
        page.get_by_role("button", name="Collect now").click()
        page.get_by_text("Collection queued").wait_for()
    cost = f"{base}/costs/?group_by=namespace&range=this-month"
    page.goto(cost)
    page.get_by_role("button", name="Compute now").click()
    page.get_by_text(re.compile(r"This hour's cost queued for \d+ clusters")).wait_for()

    def shop_costs() -> bool:
        if page.locator("td", has_text=re.compile(r"^shop$")).count():
            return True
        page.get_by_role("button", name="Compute now").click()  # the inventory may lag
        return False

    poll(page, cost, shop_costs, within=180, what="the shop namespace's cost")
    shoot(page, "12-cost-by-namespace")
