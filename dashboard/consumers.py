from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from accounts.choices import Role
from accounts.permissions import is_superuser, visible_team_ids
from clusters.choices import ClusterStatus
from clusters.realtime import FLEET_GROUP, TeamCounts, counts_by_team, team_fleet_group
from core.realtime.coalesce import CoalescingJsonConsumer
from core.realtime.snapshot import CLOSE_UNAUTHENTICATED


class FleetConsumer(CoalescingJsonConsumer):
    """`/ws/fleet/`: counts by status on connect, then (coalesced, ≤ 1/s) a message per
    change of a cluster the user may see; the page re-fetches its panels on each.

    The consumer joins its teams' fleet groups (superusers: the all-teams group) and keeps
    each team's counts from the events themselves, which carry them: a change costs the
    publisher one count, not one per connected browser.
    """

    message_type = "fleet"

    async def connect(self) -> None:
        user = self.scope.get("user")
        self.groups_joined: list[str] = []
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.all_teams = is_superuser(user)
        self.team_ids: set[int] = set()
        if not self.all_teams:
            self.team_ids = set(await database_sync_to_async(visible_team_ids)(user, Role.VIEWER))
        groups = [FLEET_GROUP] if self.all_teams else sorted(map(team_fleet_group, self.team_ids))
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined = groups
        await self.accept()
        await self.start_guard()
        await self.resync()

    async def disconnect(self, code: int) -> None:
        await super().disconnect(code)
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    def still_visible(self) -> bool:
        """Still a superuser if it joined as one, still in every team it joined for."""
        user = self.scope["user"]
        if is_superuser(user):
            return True
        return not self.all_teams and self.team_ids <= set(visible_team_ids(user, Role.VIEWER))

    async def cluster_update(self, event: dict[str, Any]) -> None:
        team_id = event.get("team_id")
        if not isinstance(team_id, int) or not (self.all_teams or team_id in self.team_ids):
            return  # not this user's cluster: say nothing about it
        counted, known = _event_counts(event), self.counts.get(team_id)
        if counted is not None and (known is None or counted.counted_at >= known.counted_at):
            self.counts[team_id] = counted
        await self.offer({"changed": event["snapshot"], "counts": self._total()})

    async def resync(self) -> None:
        team_ids = None if self.all_teams else sorted(self.team_ids)
        self.counts = await database_sync_to_async(counts_by_team)(team_ids=team_ids)
        await self.send_snapshot({"counts": self._total()})

    def _total(self) -> dict[str, int]:
        """Every status, zeros included, so the page can clear a count that dropped to 0."""
        total = dict.fromkeys(ClusterStatus.values, 0)
        for team in self.counts.values():
            for status, n in team.counts.items():
                total[status] = total.get(status, 0) + n
        return total


def _event_counts(event: dict[str, Any]) -> TeamCounts | None:
    counted_at, counts = event.get("counted_at"), event.get("team_counts")
    if isinstance(counted_at, float | int) and isinstance(counts, dict):
        return TeamCounts(float(counted_at), counts)
    return None
