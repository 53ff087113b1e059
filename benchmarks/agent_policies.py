"""Pull clusters' policy evaluation through the hub's web (issue 30): every pull cluster's
agent fetches its policies (`GET /api/v1/agent/policies`) and reports one judgement per
policy (`POST` on the same path) once per sweep interval. The agents here are the
benchmark's HTTP clients (the judging itself runs on the agents' machines, not the hub's):
1,000 enrolled pull clusters, 20 policies each, a few violations, all reporting back to
back through ONE uvicorn process (the worst case: every agent of the fleet reporting at
the same moment), so the time they take is measured against the sweep interval
(`policies.services.evaluation.EVALUATE_INTERVAL`, 600 s). The web's CPU per report comes
from the kernel's counters, as the heartbeat rows' CPU per heartbeat does.

The outcome is checked in the database: one stored result per (cluster, policy) pair,
noncompliant exactly where the reports carried violations; a second round of identical
reports (the steady state: unchanged outcomes only move `checked_at`) keeps the count.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from benchmarks import fleet
from benchmarks.procs import Sampler, Uvicorn
from benchmarks.results import Row, percentile
from benchmarks.sweep import generated_specs
from policies.choices import ResultStatus
from policies.models import Policy, PolicyEvaluation
from policies.services.evaluation import EVALUATE_INTERVAL
from policies.services.policies import policy_create

POLICIES = 20
CHECKED = 40  # objects each policy checked on a cluster
VIOLATING_EVERY = 7  # (cluster + policy) % 7 == 0: that policy has violations there
VIOLATIONS = 3
# The reports of the whole fleet must take at most this share of the sweep interval.
BUDGET_SHARE = 0.1
PATH = "/api/v1/agent/policies"


def _say(message: str) -> None:
    print(f"  [agent-policies] {message}", flush=True)  # noqa: T201


def ensure_policies(total: int = POLICIES) -> list[int]:
    """Exactly `total` enabled policies on the agents' team (generated like the sweep's,
    created once through the product's service); its bundled library is disabled so the
    count per cluster is known."""
    owner = fleet.team(fleet.AGENT_TEAM)
    specs = generated_specs(total)
    names = {spec.name for spec in specs}
    existing = set(Policy.objects.filter(team=owner, name__in=names).values_list("name", flat=True))
    for spec in specs:
        if spec.name not in existing:
            policy_create(team=owner, spec=spec, actor=None)
    Policy.objects.filter(team=owner).exclude(name__in=names).update(enabled=False)
    Policy.objects.filter(team=owner, name__in=names).update(enabled=True)
    return list(Policy.objects.filter(team=owner, enabled=True).values_list("pk", flat=True))


def _violations(cluster: int, count: int) -> list[dict[str, Any]]:
    return [
        {
            "rule": "check",
            "kind": "Pod",
            "apiVersion": "v1",
            "namespace": f"shop-{cluster % 5}",
            "name": f"web-{cluster}-{n}",
            "message": "Pod fails check",
            "controller": {"kind": "Deployment", "name": f"web-{cluster}"},
        }
        for n in range(count)
    ]


def report_body(cluster: int, policies: list[dict[str, Any]]) -> bytes:
    """The report an agent sends after judging `policies` (the GET's answer) on its
    cluster number `cluster`: a few policies violated, the rest compliant."""
    results = []
    for index, policy in enumerate(policies):
        bad = (cluster + index) % VIOLATING_EVERY == 0
        violations = _violations(cluster, VIOLATIONS) if bad else []
        results.append(
            {
                "policy": policy["id"],
                "generation": policy["generation"],
                "checked": CHECKED,
                "violations": violations,
                "errors": [],
                "violations_total": len(violations),
                "errors_total": 0,
            }
        )
    return json.dumps({"results": results, "actions": []}).encode()


class _Round:
    """One request per agent, `concurrency` at a time: latencies, errors, answers."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0
        self.answers: dict[int, dict[str, Any]] = {}
        self.seconds = 0.0


async def _round(
    base: str,
    tokens: list[str],
    *,
    bodies: list[bytes] | None,
    concurrency: int,
) -> _Round:
    """GET (bodies None) or POST each agent's body, `concurrency` connections at a time."""
    import aiohttp

    url = base + PATH
    slots = asyncio.Semaphore(concurrency)
    found = _Round()

    async def one(session: aiohttp.ClientSession, index: int) -> None:
        headers = {"Authorization": f"Bearer {tokens[index]}", "Content-Type": "application/json"}
        async with slots:
            sent = time.perf_counter()
            try:
                if bodies is None:
                    request = session.get(url, headers=headers)
                else:
                    request = session.post(url, data=bodies[index], headers=headers)
                async with request as reply:
                    text = await reply.read()
                    found.latencies.append((time.perf_counter() - sent) * 1000)
                    if reply.status != 200:
                        found.errors += 1
                        return
                    found.answers[index] = json.loads(text)
            except (aiohttp.ClientError, TimeoutError):
                found.errors += 1

    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=120)
    ) as session:
        await asyncio.gather(*(one(session, index) for index in range(len(tokens))))
    found.seconds = time.perf_counter() - started
    return found


def _measured(web: Uvicorn, tokens: list[str], **kwargs: Any) -> tuple[_Round, dict[str, Any]]:
    sampler = Sampler(web.serving()).start()
    found = asyncio.run(_round(web.base, tokens, **kwargs))
    sampler.stop()
    names = list(sampler.procs)
    cpu = sum(sampler.cpu_seconds(name) for name in names)
    served = max(len(found.answers), 1)
    detail = {
        "requests": len(tokens),
        "ok": len(found.answers),
        "errors": found.errors,
        "seconds": round(found.seconds, 2),
        "rate": round(len(tokens) / max(found.seconds, 1e-9), 1),
        "p50_ms": round(percentile(found.latencies, 50), 1),
        "p99_ms": round(percentile(found.latencies, 99), 1),
        "cpu_percent": [round(sampler.cpu_percent(name)) for name in names],
        "cpu_ms_per_request": round(1000 * cpu / served, 2),
    }
    return found, detail


def _text(detail: dict[str, Any], what: str) -> str:
    cpu = ", ".join(f"{p}%" for p in detail["cpu_percent"])
    return (
        f"{detail['requests']} in {detail['seconds']:.1f} s = {detail['rate']:.0f}/s "
        f"(p50 {detail['p50_ms']} ms, p99 {detail['p99_ms']} ms, {detail['errors']} errors; "
        f"uvicorn {cpu} CPU, {detail['cpu_ms_per_request']:.2f} ms CPU per {what})"
    )


def _stored(names: list[str]) -> tuple[int, int]:
    """Stored results of the reporting clusters: (all, noncompliant)."""
    rows = PolicyEvaluation.objects.filter(
        cluster__team__name=fleet.AGENT_TEAM, cluster__name__in=names
    )
    return rows.count(), rows.filter(status=ResultStatus.NONCOMPLIANT).count()


def run(*, web: Uvicorn, tokens: list[str], names: list[str], concurrency: int = 32) -> list[Row]:
    """`tokens[i]` is the agent of the cluster named `names[i]` (enrolled, heartbeating)."""
    count = len(tokens)
    policy_ids = ensure_policies()
    budget = BUDGET_SHARE * EVALUATE_INTERVAL
    _say(f"{count} agents fetch their {len(policy_ids)} policies ({concurrency} connections)")
    fetched, detail = _measured(web, tokens, bodies=None, concurrency=concurrency)
    sizes = [len(answer.get("policies") or []) for answer in fetched.answers.values()]
    wrong = sum(size != len(policy_ids) for size in sizes)
    rows = [
        Row(
            "agent-policies",
            f"policy fetches (GET {PATH}) of {count} pull clusters, one uvicorn process",
            _text(detail, "fetch") + f"; {wrong} answers without the {len(policy_ids)} policies",
            target="0 errors, every cluster gets its policies",
            ok=not detail["errors"] and not wrong and len(sizes) == count,
            value=detail["rate"],
            detail=detail,
        )
    ]
    bodies = [
        report_body(index, (fetched.answers.get(index) or {}).get("policies") or [])
        for index in range(count)
    ]
    expected_bad = sum(
        (index + n) % VIOLATING_EVERY == 0 for index in range(count) for n in range(len(policy_ids))
    )
    expected = count * len(policy_ids)
    size = sum(len(body) for body in bodies) / max(count, 1)
    for label in ("first reports (results stored)", "reports again (unchanged outcomes)"):
        _say(f"{count} agents report {len(policy_ids)} results each: {label}")
        reported, detail = _measured(web, tokens, bodies=bodies, concurrency=concurrency)
        stored_ok = sum(int(answer.get("stored", 0)) for answer in reported.answers.values())
        stored, bad = _stored(names)
        detail |= {
            "body_bytes_mean": round(size),
            "results_accepted": stored_ok,
            "rows_stored": stored,
            "rows_noncompliant": bad,
            "rows_expected": expected,
            "noncompliant_expected": expected_bad,
            "sweep_interval_s": EVALUATE_INTERVAL,
        }
        ok = (
            not detail["errors"]
            and stored_ok == expected
            and stored == expected
            and bad == expected_bad
            and detail["seconds"] <= budget
        )
        rows.append(
            Row(
                "agent-policies",
                f"policy reports (POST {PATH}, {len(policy_ids)} results, ~{size / 1024:.0f} KiB "
                f"each) of {count} pull clusters back to back, one uvicorn process: {label}",
                _text(detail, "report")
                + f"; {stored:,} results stored ({bad:,} noncompliant) of {expected:,} "
                f"({expected_bad:,})",
                target=f"0 errors, all stored, <= {budget:.0f} s "
                f"({BUDGET_SHARE:.0%} of the {EVALUATE_INTERVAL} s sweep interval)",
                ok=ok,
                value=detail["seconds"],
                detail=detail,
            )
        )
    return rows
