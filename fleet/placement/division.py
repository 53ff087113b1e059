"""Replica division for `fleet.placement.scheduler` (pure): Sainte-Laguë (Webster)
apportionment with caps, and Karmada's steady scaling of dynamically weighted divisions
(capacity, aggregated).

Static weights are divided from scratch at every decision: Webster is a divisor method, so
it is house-monotone (more replicas never take one from a cluster, fewer never add one),
and a fresh division with unchanged weights only adds or removes replicas. Dynamic weights
(room, which moves with every other application) are divided as Karmada's Steady
assignment does (pkg/scheduler/core/assignment.go, division_algorithm.go):

- replicas already held (`held`, at most what still fits) stay where they are;
- scale up: only the increment is divided, by each cluster's room left (`capacity`); or, in
  `aggregated`, over as few clusters as hold it, clusters already holding replicas first,
  then by room left, largest first;
- scale down: the new total is divided by the replicas each cluster holds (proportionally
  to the current shares); `aggregated` first keeps as few of the largest holders as hold
  the new total.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Literal

# A division weight counts at most this much (a cluster with room for more replicas weighs
# this much in a capacity division): with weights and seats this small, distinct quotients
# weight / (2 * seats + 1) are further apart than floats round, so floats order them
# exactly (see `_apportion`).
MAX_WEIGHT = 1_000_000


def webster(
    total: int, weights: Mapping[str, int | Decimal], caps: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Sainte-Laguë (Webster) apportionment of `total` seats by (whole) weight, no party
    above its cap (`caps`; none: no cap). Each seat goes to the highest quotient
    weight / (2s + 1) of a party below its cap; ties go to the larger weight, then the name
    in the ranking's order (Python's: "prod" before "prod-eu", "c1" before "c10"). Fewer
    seats than `total` when the caps hold fewer."""
    names = sorted(weights)
    whole = [_whole_weight(weights[name]) for name in names]
    limits = [total if caps is None else max(min(caps[name], total), 0) for name in names]
    return dict(zip(names, _apportion(total, whole, limits), strict=True))


def _whole_weight(weight: int | Decimal) -> int:
    if weight != int(weight) or weight < 0:
        raise ValueError(f"weights are whole numbers, 0 or more: {weight}")
    return min(int(weight), MAX_WEIGHT)


def _apportion(total: int, weights: list[int], caps: list[int]) -> list[int]:
    """`webster` by index (ties: larger weight, then lower index), without handing out
    seats one by one: O(n log n) in the parties whatever `total` is.

    It finds a threshold t near the last seat's quotient (water-filling: the continuous
    share w / 2t, capped), gives every party each seat whose quotient is at least t
    (counted exactly in integers: t is a binary fraction p/q, and seat k + 1 of weight w
    has a quotient >= p/q iff (2k + 1) p <= w q), which is what seat-by-seat assignment
    gives at that quotient, then adds the next-best or removes the worst seats one by one
    until the total is reached (a few per party at most). Quotients are compared as
    floats: with weights <= MAX_WEIGHT and seats <= MAX_REPLICAS, distinct quotients
    differ by more than their rounding, so the float order is the exact one."""
    caps = [cap if weight > 0 else 0 for weight, cap in zip(weights, caps, strict=True)]
    if total >= sum(caps):
        return caps
    if total <= 0:
        return [0] * len(weights)
    threshold = Fraction(_threshold(total, weights, caps))
    p, q = threshold.numerator, threshold.denominator
    seats = [
        min(cap, (weight * q + p) // (2 * p)) for weight, cap in zip(weights, caps, strict=True)
    ]
    missing = total - sum(seats)
    if missing > 0:  # the best seats not given, best first
        best = [
            (-w / (2 * s + 1), -w, i)
            for i, (w, s, c) in enumerate(zip(weights, seats, caps, strict=True))
            if s < c
        ]
        heapq.heapify(best)
        for _ in range(missing):
            _, _, index = heapq.heappop(best)
            seats[index] += 1
            given, weight = seats[index], weights[index]
            if given < caps[index]:
                heapq.heappush(best, (-weight / (2 * given + 1), -weight, index))
    elif missing < 0:  # the worst seats given, worst (last given) first
        worst = [
            (w / (2 * s - 1), w, -i)
            for i, (w, s) in enumerate(zip(weights, seats, strict=True))
            if s > 0
        ]
        heapq.heapify(worst)
        for _ in range(-missing):
            _, _, negative = heapq.heappop(worst)
            index = -negative
            seats[index] -= 1
            given, weight = seats[index], weights[index]
            if given > 0:
                heapq.heappush(worst, (weight / (2 * given - 1), weight, negative))
    return seats


def _threshold(total: int, weights: list[int], caps: list[int]) -> float:
    """A quotient near the one of the `total`-th seat (> 0; `total` below the caps' sum):
    the t where the capped continuous shares min(cap, w / 2t) sum to `total`. Parties are
    capped in order of w / 2cap (the t below which a share reaches its cap); the rounding
    of each share to seats is within 1/2 of it, so the exact count at t is within half a
    seat per party of `total`."""
    open_ = [i for i, c in enumerate(caps) if c > 0]
    limits = [weights[i] / (2 * caps[i]) for i in open_]
    weight_left = float(sum(weights[i] for i in open_))
    seats_left = float(total)
    if weight_left / (2 * seats_left) >= max(limits):
        return weight_left / (2 * seats_left)  # no share reaches its cap
    for position in sorted(range(len(open_)), key=limits.__getitem__, reverse=True):
        t = weight_left / (2 * seats_left)
        if t >= limits[position]:
            return t
        # This party's share exceeds its cap, so its cap is below `seats_left`: it stays > 0.
        index = open_[position]
        seats_left -= caps[index]
        weight_left -= weights[index]
    raise AssertionError("the caps hold more than `total`: some party stays below its cap")


Dynamic = Literal["capacity", "aggregated"]


def steady(
    total: int, room: dict[str, int], held: dict[str, int], *, mode: Dynamic
) -> dict[str, int]:
    """Replicas per cluster of `room` (the replicas each fits, this application's own
    included) when `held` (per cluster, each at most its room) are already placed. Seats
    that fit nowhere are missing from the sum."""
    assigned = sum(held.values())
    result = dict.fromkeys(room, 0)
    if assigned > total:  # scale down by the current shares
        result.update(_dynamic(total, held, prior=set(), mode=mode))
        return result
    result.update(held)
    if assigned < total:  # scale up: the increment only, by the room left
        left = {name: fit - held.get(name, 0) for name, fit in room.items()}
        prior = {name for name, count in held.items() if count > 0}
        for name, extra in _dynamic(total - assigned, left, prior=prior, mode=mode).items():
            result[name] += extra
    return result


def _dynamic(
    total: int, weights: dict[str, int], *, prior: set[str], mode: Dynamic
) -> dict[str, int]:
    """`total` divided by `weights`, none above its weight. `aggregated`: over the fewest
    clusters whose weights hold `total`, those in `prior` first, then the largest (ties:
    name order)."""
    if mode == "aggregated":
        order = sorted(weights, key=lambda name: (name not in prior, -weights[name], name))
        kept: dict[str, int] = {}
        holds = 0
        for name in order:
            if holds >= total:
                break
            if weights[name] > 0:
                kept[name] = weights[name]
                holds += weights[name]
        weights = kept
    return webster(total, dict(weights), dict(weights))
