"""Token ring math: work units as Cassandra ``(start, end]`` token ranges.

The Murmur3 ring is ``(-2**63, 2**63 - 1]``: ``-2**63`` is never a partition
token, so a range starting there loses nothing. Every function here keeps the
invariant that the planned ranges cover that interval exactly once.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "auto_splits",
    "check_exact_cover",
    "make_work_units",
    "MAX_TOKEN",
    "merge_adjacent",
    "MIN_TOKEN",
    "plan_ranges",
    "ring_ranges",
    "RING_SIZE",
    "subtract",
    "TokenRange",
    "WorkUnit",
]

MIN_TOKEN = -(2**63)
MAX_TOKEN = 2**63 - 1
RING_SIZE = MAX_TOKEN - MIN_TOKEN  # number of tokens in (MIN_TOKEN, MAX_TOKEN]


@dataclass(frozen=True, order=True)
class TokenRange:
    """A half-open token range ``(start, end]``; ``start < end``, never wrapping."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not (MIN_TOKEN <= self.start < self.end <= MAX_TOKEN):
            raise ValueError(f"invalid token range ({self.start}, {self.end}]")

    @property
    def size(self) -> int:
        return self.end - self.start

    def contains(self, token: int) -> bool:
        return self.start < token <= self.end

    def split(self, parts: int) -> list[TokenRange]:
        """Split into ``parts`` contiguous ranges of near-equal token width."""
        parts = max(1, min(parts, self.size))
        bounds = [self.start + (self.size * i) // parts for i in range(parts)] + [self.end]
        return [TokenRange(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if a < b]


@dataclass(frozen=True)
class WorkUnit:
    """One planned unit of work: an id and its ``(start, end]`` range."""

    unit_id: int
    start: int
    end: int

    @property
    def token_range(self) -> TokenRange:
        return TokenRange(self.start, self.end)

    def to_json(self) -> list[int]:
        return [self.unit_id, self.start, self.end]

    @classmethod
    def from_json(cls, value: Sequence[int]) -> WorkUnit:
        unit_id, start, end = (int(v) for v in value)
        return cls(unit_id, start, end)


def ring_ranges(ring_tokens: Iterable[int]) -> list[TokenRange]:
    """Primary ranges of a ring given its node tokens, the wrapping one split in two.

    A ring of tokens ``t0 < ... < tn`` owns ``(t_{i-1}, t_i]`` plus the wrapping
    range ``(tn, t0]``, which becomes ``(tn, MAX]`` and ``(MIN, t0]``.
    """
    tokens = sorted(set(int(t) for t in ring_tokens))
    if not tokens:
        return [TokenRange(MIN_TOKEN, MAX_TOKEN)]
    ranges = [TokenRange(a, b) for a, b in zip(tokens, tokens[1:], strict=False)]
    if tokens[-1] < MAX_TOKEN:
        ranges.append(TokenRange(tokens[-1], MAX_TOKEN))
    if tokens[0] > MIN_TOKEN:
        ranges.append(TokenRange(MIN_TOKEN, tokens[0]))
    return sorted(ranges)


def plan_ranges(
    ring_tokens: Iterable[int],
    splits: int,
    partitions_per_range: dict[tuple[int, int], int] | None = None,
) -> list[TokenRange]:
    """Cut the ring into about ``splits`` ranges of similar weight.

    Each ring range keeps its own boundaries (so each unit has one replica set)
    and gets a share of ``splits`` in proportion to its weight: the partition
    count from ``system.size_estimates`` where known, else its token width.
    """
    if splits < 1:
        raise ValueError("splits must be at least 1")
    base = ring_ranges(ring_tokens)
    weights = _weights(base, partitions_per_range or {})
    total = sum(weights)
    planned: list[TokenRange] = []
    for token_range, weight in zip(base, weights, strict=True):
        share = max(1, round(splits * weight / total)) if total else 1
        planned.extend(token_range.split(share))
    return planned


def auto_splits(tokens: list[int], estimates: dict[tuple[int, int], int], workers: int) -> int:
    """The number of work units when ``--splits`` is 0: enough for every worker to stay
    busy, at least one per ring range, about 100k estimated partitions each at most."""
    estimated = sum(max(0, c) for c in estimates.values())
    by_size = -(-estimated // 100_000) if estimated else 0
    return max(32, 4 * workers, len(tokens) + 1, min(by_size, 4096))


def _weights(base: list[TokenRange], estimates: dict[tuple[int, int], int]) -> list[float]:
    """Weight of each range: estimated partitions when estimates cover the ring, else width."""
    if estimates:
        est_ranges = sorted(_unwrapped(estimates))
        disjoint = all(a[0].end <= b[0].start for a, b in itertools.pairwise(est_ranges))
        weights = [_estimated(r, est_ranges, disjoint) for r in base]
        if sum(weights) > 0:
            # Ranges with no estimate still get a small width-based weight.
            mean_density = sum(weights) / sum(r.size for r in base)
            return [
                w if w > 0 else r.size * mean_density * 0.1
                for w, r in zip(weights, base, strict=True)
            ]
    return [float(r.size) for r in base]


def _unwrapped(estimates: dict[tuple[int, int], int]) -> list[tuple[TokenRange, float]]:
    """The estimates as ``(range, partitions)`` within the ring's order: the range that
    wraps (Cassandra reports it ``(t_n, MIN]``, which ends at the ring's end, or
    ``(t_n, t_0]``) becomes ``(t_n, MAX]`` and ``(MIN, t_0]`` with its count shared by
    width. Ignoring it gave the wrapping range a tenth of its share of the units: one unit
    ten times the size of the others, the export's last straggler."""
    out: list[tuple[TokenRange, float]] = []
    for (start, end), count in estimates.items():
        if count < 0:
            continue
        if end == MIN_TOKEN:
            end = MAX_TOKEN
        if start < end:
            out.append((TokenRange(start, end), float(count)))
        elif start > end:
            parts = [TokenRange(start, MAX_TOKEN)] if start < MAX_TOKEN else []
            parts += [TokenRange(MIN_TOKEN, end)] if end > MIN_TOKEN else []
            width = sum(part.size for part in parts)
            out += [(part, count * part.size / width) for part in parts]
    return out


def _estimated(
    token_range: TokenRange, est_ranges: list[tuple[TokenRange, float]], disjoint: bool
) -> float:
    """Partitions of ``token_range`` by the estimates (sorted by start), each spread evenly
    over its width. Only the estimates that can overlap are visited: those starting before
    the range's end, from the last one starting at or before its start when the estimates
    are disjoint (one node's are), so planning stays near linear in the ring size (every
    range against every estimate was quadratic: minutes for a ring of 100k ranges)."""
    first = 0
    if disjoint:  # sorted disjoint ranges: every one before ``first`` ends by its start
        first = max(0, bisect.bisect_right(est_ranges, token_range.start, key=_start) - 1)
    weight = 0.0
    for index in range(first, len(est_ranges)):
        est, count = est_ranges[index]
        if est.start >= token_range.end:
            break
        overlap = min(est.end, token_range.end) - max(est.start, token_range.start)
        if overlap > 0:
            weight += count * overlap / est.size
    return weight


def _start(estimate: tuple[TokenRange, float]) -> int:
    return estimate[0].start


def make_work_units(ranges: Sequence[TokenRange]) -> list[WorkUnit]:
    return [WorkUnit(i, r.start, r.end) for i, r in enumerate(sorted(ranges))]


def subtract(token_range: TokenRange, done: Iterable[TokenRange]) -> list[TokenRange]:
    """The parts of ``token_range`` not covered by ``done``."""
    remaining = [token_range]
    for d in sorted(done):
        next_remaining = []
        for r in remaining:
            if d.end <= r.start or d.start >= r.end:
                next_remaining.append(r)
                continue
            if d.start > r.start:
                next_remaining.append(TokenRange(r.start, d.start))
            if d.end < r.end:
                next_remaining.append(TokenRange(d.end, r.end))
        remaining = next_remaining
    return remaining


def check_exact_cover(ranges: Iterable[TokenRange]) -> list[str]:
    """Problems (gaps, overlaps) of ``ranges`` as a cover of the whole ring; empty if exact."""
    problems = []
    position = MIN_TOKEN
    for r in sorted(ranges):
        if r.start > position:
            problems.append(f"gap ({position}, {r.start}]")
        elif r.start < position:
            problems.append(f"overlap ({r.start}, {min(position, r.end)}]")
        position = max(position, r.end)
    if position < MAX_TOKEN:
        problems.append(f"gap ({position}, {MAX_TOKEN}]")
    return problems


def merge_adjacent(ranges: Iterable[TokenRange]) -> list[list[int]]:
    """Sorted ``[start, end]`` pairs with touching ranges merged (for checkpoint.json)."""
    merged: list[list[int]] = []
    for r in sorted(ranges):
        if merged and merged[-1][1] == r.start:
            merged[-1][1] = r.end
        else:
            merged.append([r.start, r.end])
    return merged
