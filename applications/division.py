"""Replica division for `applications.scheduler` (pure): Sainte-Laguë (Webster)
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
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Literal

import numpy as np

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
    limits = np.array([total if caps is None else caps[name] for name in names], dtype=np.int64)
    shares = apportion(total, [weights[name] for name in names], limits)
    return dict(zip(names, shares.tolist(), strict=True))


def apportion(total: int, weights: Sequence[int | Decimal], caps: np.ndarray) -> np.ndarray:
    """`webster` over parties in name order: `weights` and `caps` by position."""
    return _apportion(total, _whole_weights(weights), np.clip(caps, 0, max(total, 0)))


def _whole_weights(weights: Sequence[int | Decimal]) -> np.ndarray:
    if set(map(type, weights)) <= {int} and (not weights or max(weights) <= MAX_WEIGHT):
        whole = np.array(weights, dtype=np.int64)
        if len(whole) and whole.min() < 0:
            raise ValueError(f"weights are whole numbers, 0 or more: {int(whole.min())}")
        return whole
    return np.array([_whole_weight(weight) for weight in weights], dtype=np.int64)


def _whole_weight(weight: int | Decimal) -> int:
    if weight != int(weight) or weight < 0:
        raise ValueError(f"weights are whole numbers, 0 or more: {weight}")
    return min(int(weight), MAX_WEIGHT)


# The threshold's denominator: t = p / SCALE, so weight * SCALE + p stays within int64
# (MAX_WEIGHT * 2**32 < 2**53) and p >= 1 for every threshold (t >= 1 / (2 * MAX_REPLICAS)).
SCALE = 2**32


def _apportion(total: int, w: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """`webster` by index (ties: larger weight, then lower index), without handing out
    seats one by one: O(n log n) in the parties whatever `total` is, in arrays.

    It finds a threshold t near the last seat's quotient (water-filling: the continuous
    share w / 2t, capped), gives every party each seat whose quotient is at least t
    (counted exactly in integers: t is a binary fraction p/q, and seat k + 1 of weight w
    has a quotient >= p/q iff (2k + 1) p <= w q), which is what seat-by-seat assignment
    gives at that quotient, then adds the next-best or removes the worst seats one by one
    until the total is reached (a few per party at most). Quotients are compared as
    floats: with weights <= MAX_WEIGHT and seats <= MAX_REPLICAS, distinct quotients
    differ by more than their rounding, so the float order is the exact one."""
    c = np.where(w > 0, caps, 0)
    if total >= int(c.sum()):
        return c
    if total <= 0:
        return np.zeros(len(w), dtype=np.int64)
    p = max(1, round(_threshold(total, w, c) * SCALE))
    seats = np.minimum(c, (w * SCALE + p) // (2 * p))
    missing = total - int(seats.sum())
    if missing > 0:
        _add_best(seats, w, c, missing)
    elif missing < 0:
        _remove_worst(seats, w, -missing)
    return seats


def _add_best(seats: np.ndarray, w: np.ndarray, c: np.ndarray, missing: int) -> None:
    """Give the `missing` best seats not given, best first (ties: larger weight, lower
    index). A party's quotients fall seat by seat, so only the parties whose next seat is
    among the `missing` best next seats can get any: the heap holds only those."""
    open_ = np.flatnonzero(seats < c)
    quotients = w[open_] / (2 * seats[open_] + 1)
    if missing < len(open_):
        kth = np.partition(quotients, len(open_) - missing)[len(open_) - missing]
        keep = quotients >= kth  # every party tied with the last one too
        open_, quotients = open_[keep], quotients[keep]
    # Without a heap when no winner's next seat would rank among the picks: then the
    # `missing` best next seats are the answer (at 10,000 parties, the usual case).
    order = np.lexsort((open_, -w[open_], -quotients))[:missing]
    winners = open_[order]
    again = seats[winners] + 1 < c[winners]
    if (
        len(order) == missing
        and (w[winners][again] / (2 * seats[winners][again] + 3) < quotients[order[-1]]).all()
    ):
        seats[winners] += 1
        return
    best = [
        (-q, -int(w[i]), int(i)) for q, i in zip(quotients.tolist(), open_.tolist(), strict=True)
    ]
    heapq.heapify(best)
    for _ in range(missing):
        _, negative_weight, index = heapq.heappop(best)
        seats[index] += 1
        given = int(seats[index])
        if given < c[index]:
            heapq.heappush(best, (negative_weight / (2 * given + 1), negative_weight, index))


def _remove_worst(seats: np.ndarray, w: np.ndarray, extra: int) -> None:
    """Take back the `extra` worst seats given, worst (last given) first: only the parties
    whose last seat is among the `extra` worst last seats can lose any."""
    given = np.flatnonzero(seats > 0)
    quotients = w[given] / (2 * seats[given] - 1)
    if extra < len(given):
        kth = np.partition(quotients, extra - 1)[extra - 1]
        keep = quotients <= kth
        given, quotients = given[keep], quotients[keep]
    # Without a heap when no loser's seat before would rank among the removals (as above).
    order = np.lexsort((-given, w[given], quotients))[:extra]
    losers = given[order]
    again = seats[losers] > 1
    if (
        len(order) == extra
        and (w[losers][again] / (2 * seats[losers][again] - 3) > quotients[order[-1]]).all()
    ):
        seats[losers] -= 1
        return
    worst = [
        (q, int(w[i]), -int(i)) for q, i in zip(quotients.tolist(), given.tolist(), strict=True)
    ]
    heapq.heapify(worst)
    for _ in range(extra):
        _, weight, negative = heapq.heappop(worst)
        index = -negative
        seats[index] -= 1
        left = int(seats[index])
        if left > 0:
            heapq.heappush(worst, (weight / (2 * left - 1), weight, negative))


def _threshold(total: int, w: np.ndarray, c: np.ndarray) -> float:
    """A quotient near the one of the `total`-th seat (> 0; `total` below the caps' sum):
    the t where the capped continuous shares min(cap, w / 2t) sum to `total`. Parties are
    capped in order of w / 2cap (the t below which a share reaches its cap): with the
    first k capped, t_k = (W - their weights) / 2(total - their caps), and t is the first
    t_k that caps no further party. The rounding of each share to seats is within 1/2 of
    it, so the exact count at t is within half a seat per party of `total`."""
    open_ = np.flatnonzero(c > 0)
    limits = w[open_] / (2 * c[open_])
    order = np.argsort(-limits, kind="stable")
    limits = limits[order]
    capped_weight = np.concatenate(([0], np.cumsum(w[open_][order])))[:-1]
    capped_seats = np.concatenate(([0], np.cumsum(c[open_][order])))[:-1]
    seats_left = total - capped_seats
    # While capping, seats_left stays > 0 (a capped party's cap is below what is left).
    valid = seats_left > 0
    t = np.where(valid, (int(w[open_].sum()) - capped_weight) / (2 * np.maximum(seats_left, 1)), 0)
    found = np.flatnonzero(valid & (t >= limits))
    if not len(found):
        raise AssertionError("the caps hold more than `total`: some party stays below its cap")
    return float(t[found[0]])


Dynamic = Literal["capacity", "aggregated"]


def steady(total: int, room: np.ndarray, held: np.ndarray, *, mode: Dynamic) -> np.ndarray:
    """Replicas per cluster (in name order) of `room` (the replicas each fits, this
    application's own included) when `held` (each at most its room) are already placed.
    Seats that fit nowhere are missing from the sum."""
    assigned = int(held.sum())
    if assigned > total:  # scale down by the current shares
        return _dynamic(total, held, prior=np.zeros(len(held), dtype=bool), mode=mode)
    result = held.copy()
    if assigned < total:  # scale up: the increment only, by the room left
        result += _dynamic(total - assigned, room - held, prior=held > 0, mode=mode)
    return result


def _dynamic(total: int, weights: np.ndarray, *, prior: np.ndarray, mode: Dynamic) -> np.ndarray:
    """`total` divided by `weights` (name order), none above its weight. `aggregated`: over
    the fewest clusters whose weights hold `total`, those in `prior` first, then the
    largest (ties: name order)."""
    if mode == "aggregated":
        # lexsort: the last key first (prior before the others, larger weights, name)
        order = np.lexsort((np.arange(len(weights)), -weights, ~prior))
        ordered = weights[order]
        holds_before = np.cumsum(ordered) - ordered
        kept = order[(ordered > 0) & (holds_before < total)]
        weights = np.zeros_like(weights)
        weights[kept] = ordered[(ordered > 0) & (holds_before < total)]
    return _apportion(total, np.minimum(weights, MAX_WEIGHT), np.clip(weights, 0, total))
