"""A rolling window of two counters (calls and failures, or requests and tokens) per deployment.

The window is a ring of fixed-width buckets: adding is O(1) with no allocation, and a bucket
older than the window is reset the next time its slot comes round. Totals are summed only when
a decision needs them (a failure, a usage-aware pick), never on the success path.
"""

from __future__ import annotations


class RollingPair:
    __slots__ = ("_a", "_b", "_buckets", "_stamp", "_width")

    def __init__(self, window_s: float = 60.0, buckets: int = 6) -> None:
        self._buckets = buckets
        self._width = window_s / buckets
        self._stamp = [-1] * buckets
        self._a = [0] * buckets
        self._b = [0] * buckets

    def add(self, now: float, a: int = 0, b: int = 0) -> None:
        slot = int(now / self._width)  # `now` is monotonic time: never negative
        i = slot % self._buckets
        if self._stamp[i] != slot:
            self._stamp[i] = slot
            self._a[i] = 0
            self._b[i] = 0
        self._a[i] += a
        self._b[i] += b

    def totals(self, now: float) -> tuple[int, int]:
        """(a, b) over the buckets still inside the window (the current one included)."""
        oldest = int(now / self._width) - self._buckets + 1
        a = b = 0
        for i, stamp in enumerate(self._stamp):
            if stamp >= oldest:
                a += self._a[i]
                b += self._b[i]
        return a, b

    def clear(self) -> None:
        for i in range(self._buckets):
            self._stamp[i] = -1
            self._a[i] = 0
            self._b[i] = 0
