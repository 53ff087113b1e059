"""Move an application to one of its versions cluster by cluster: each cluster's work is
pointed at the version and applied through the propagation path rollouts use
(`applications.versions`), and judged healthy as a rollout judges a step: every workload
updated and available within the application's `health_timeout_seconds`. Reversible: the
version a cluster ran is kept in the state and `revert` moves it back.

While the run is under way it holds the application (`applications.holds`, answered by
`updates.signals`): reconcile does not re-place it and no rollout starts, so nothing moves
the clusters back to the last decision's version. When every stage succeeded, `finish`
records the target as the application's current version.

Cancel: nothing runs between checks (applying is done inside `start`), so there is no
child Operation to cancel; aborting the run stops new clusters, and a cluster already
moved keeps the version it was given.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from django.core.exceptions import ValidationError
from django.utils import timezone

from applications.models import Application, ClusterWork, WorkState
from applications.propagation import work_refresh
from applications.spec import rollout_spec
from applications.versions import application_cluster_version_set, application_current_version_set
from clusters.models import Cluster
from updates.changes.base import ClusterPlan, Step
from updates.changes.params import params_object

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from accounts.models import Team

# A cluster's share of the preview's duration: applying and becoming available usually
# takes about a minute; the health timeout bounds it.
ESTIMATE_SECONDS = 60


def _version_number(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValidationError({"version": "A version number of the application, e.g. 2."})
    return value


def label(version: int | None) -> str:
    return f"version {version}" if version is not None else ""


class ApplicationVersionChange:
    kind: ClassVar[str] = "application_version"
    reversible: ClassVar[bool] = True

    def __init__(self, *, team: Team, params: dict[str, Any]) -> None:
        params = params_object(params, ("application", "version"))
        name = str(params.get("application") or "")
        application = Application.objects.filter(team=team, name=name).first()
        if application is None:
            raise ValidationError(
                {"application": f"Team {team.name} has no application named {name!r}."}
            )
        version = _version_number(params.get("version"))
        if not application.versions.filter(number=version).exists():
            known = ", ".join(
                str(n) for n in application.versions.values_list("number", flat=True)[:20]
            )
            raise ValidationError(
                {"version": f"{application.name} has no version {version} (it has {known})."}
            )
        self.team = team
        self.application = application
        self.version = version

    def params(self) -> dict[str, Any]:
        return {"application": self.application.name, "version": self.version}

    def describe(self) -> str:
        return f"application {self.application.name} → version {self.version}"

    def _timeout(self) -> int:
        application = Application.objects.only("rollout").get(pk=self.application.pk)
        return rollout_spec(application.rollout).health_timeout_seconds

    def plan(self, clusters: Sequence[Cluster]) -> list[ClusterPlan]:
        works = {
            w.cluster_id: w
            for w in ClusterWork.objects.filter(
                application=self.application, cluster__in=[c.pk for c in clusters]
            ).exclude(state=WorkState.ORPHANED)
        }
        estimate = min(ESTIMATE_SECONDS, self._timeout())
        plans = []
        for cluster in clusters:
            work = works.get(cluster.pk)
            running = None
            skip = f"{self.application.name} is not placed on {cluster.name}."
            if work is not None:
                running = work.applied_version or work.desired_version
                skip = (
                    f"Already runs version {self.version}."
                    if work.desired_version == work.applied_version == self.version
                    else ""
                )
            plans.append(
                ClusterPlan(
                    cluster_id=cluster.pk,
                    cluster_name=cluster.name,
                    from_value=label(running),
                    to_value=label(self.version),
                    skip_reason=skip,
                    estimate_seconds=estimate,
                )
            )
        return plans

    def _move(
        self, cluster: Cluster, version: int, *, actor: AbstractBaseUser | None
    ) -> dict[str, Any]:
        """Point the cluster at `version` and apply it; the state `poll` judges."""
        timeout = self._timeout()
        deadline = timezone.now() + timedelta(seconds=timeout)
        state: dict[str, Any] = {
            "version": version,
            "timeout": timeout,
            "deadline": deadline.isoformat(),
        }
        try:
            work, outcome = application_cluster_version_set(
                actor=actor, application=self.application, cluster=cluster, version=version
            )
        except ValidationError as error:
            return state | {"error": " ".join(error.messages)}
        state["work"] = work.pk
        if not outcome.ok:
            state["error"] = f"{cluster.name}: {outcome.message}"
        return state

    def start(self, cluster: Cluster, *, actor: AbstractBaseUser | None) -> dict[str, Any]:
        work = (
            ClusterWork.objects.filter(application=self.application, cluster=cluster)
            .exclude(state=WorkState.ORPHANED)
            .first()
        )
        previous = None if work is None else (work.applied_version or work.desired_version)
        return {"from": previous} | self._move(cluster, self.version, actor=actor)

    def poll(self, cluster: Cluster, state: dict[str, Any]) -> Step:
        if state.get("error"):
            return Step("failed", str(state["error"]))
        if state.get("noop"):
            return Step("done", str(state["noop"]))
        version = int(state["version"])
        work = ClusterWork.objects.filter(pk=int(state.get("work") or 0)).first()
        if work is None:
            return Step("failed", f"{self.application.name} left {cluster.name} meanwhile.")
        if work.desired_version != version:
            return Step(
                "failed", f"{cluster.name} was moved to version {work.desired_version} meanwhile."
            )
        outcome = work_refresh(work)
        work.refresh_from_db(fields=["state", "applied_version", "message"])
        if work.state == WorkState.FAILED:
            return Step("failed", f"{cluster.name}: {work.message or outcome.message}")
        if outcome.ok and outcome.complete and work.applied_version == version:
            return Step("done", f"Version {version} available on {cluster.name}.")
        waiting = outcome.message or "not available yet"
        if timezone.now() > datetime.fromisoformat(str(state["deadline"])):
            timeout = state.get("timeout")
            return Step("failed", f"{cluster.name}: not available within {timeout}s ({waiting}).")
        return Step("running", f"{cluster.name}: {waiting}")

    def revert(
        self, cluster: Cluster, state: dict[str, Any], *, actor: AbstractBaseUser | None
    ) -> dict[str, Any]:
        previous = state.get("from")
        if previous is None or "work" not in state:
            # Nothing was changed on this cluster (refused before its work moved).
            return state | {"error": "", "noop": f"{cluster.name} was not changed."}
        return {"from": previous, "reverting": True} | self._move(
            cluster, int(previous), actor=actor
        )

    def finish(self, clusters: Sequence[Cluster], *, actor: AbstractBaseUser | None) -> None:
        """The target becomes the application's current version (so reconcile and the next
        reschedule roll it out, not the old one)."""
        application_current_version_set(
            actor=actor, application=self.application, version=self.version
        )

    def impact(self, clusters: Sequence[Cluster]) -> dict[str, Any]:
        return {}
