"""The restriction of the splittable reader: a work unit's token range as Beam offsets.

A work unit ``(start, end]`` of tokens is the OffsetRange ``[start + 1, end + 1)``: a
partition is claimed at its token, and the runner may split the range at any token.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.coders import coders
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.transforms.core import RestrictionProvider

__all__ = ["TOKEN_RANGES", "TokenRangeRestrictionProvider", "TokenRestrictionCoder"]


class TokenRestrictionCoder(coders.Coder):
    """OffsetRange over tokens reaches 2**63; fixed-width signed bytes never overflow."""

    def encode(self, value: OffsetRange) -> bytes:
        return value.start.to_bytes(9, "big", signed=True) + value.stop.to_bytes(
            9, "big", signed=True
        )

    def decode(self, encoded: bytes) -> OffsetRange:
        return OffsetRange(
            int.from_bytes(encoded[:9], "big", signed=True),
            int.from_bytes(encoded[9:18], "big", signed=True),
        )

    def is_deterministic(self) -> bool:
        return True


class TokenRangeRestrictionProvider(RestrictionProvider):
    """Work unit ``(start, end]`` <-> OffsetRange ``[start + 1, end + 1)`` of token positions."""

    def initial_restriction(self, element: Sequence[int]) -> OffsetRange:
        _, _, start, end = element
        return OffsetRange(start + 1, end + 1)

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        return OffsetRestrictionTracker(restriction)

    def restriction_size(self, element: Any, restriction: OffsetRange) -> int:
        return restriction.size()

    def split(self, element: Any, restriction: OffsetRange) -> Iterator[OffsetRange]:
        yield restriction  # work units are already planned to size

    def restriction_coder(self) -> coders.Coder:
        return TokenRestrictionCoder()


TOKEN_RANGES = beam.DoFn.RestrictionParam(TokenRangeRestrictionProvider())
