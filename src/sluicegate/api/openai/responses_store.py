"""The in-process store behind `previous_response_id` and `GET`/`DELETE /v1/responses/{id}`.

Each stored response keeps its Response object (the bytes `GET` returns) and its `Turn`: this
turn's chat messages (input items, then the assistant's output) linked to the turn it continued.
Linking rather than copying keeps a long conversation O(messages) in memory instead of
O(turns²), and a turn stays usable after its parent's own entry expired or was deleted.

Bounded two ways (`responses:` in the config): entries older than `retention_s` are dropped, and
beyond `max_stored` the oldest go first. Every entry has the same retention, so insertion order
is expiry order and both purges pop from the front of one dict: O(1) amortised per call. (After a
reload shortens the retention, a newer entry may expire before an older one: `get` checks each
entry's own deadline, so that only delays freeing its memory.)

The store is per process (with `--workers N`, a follow-up call must reach the same worker);
shared storage comes with the database of issue #4.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Turn:
    """One turn's chat messages and the turn it continued (None for the first)."""

    messages: tuple[dict[str, Any], ...]
    parent: Turn | None = None

    def conversation(self) -> list[dict[str, Any]]:
        """Every message from the first turn to this one, in order (iterative: chains can be long)."""
        chain: list[tuple[dict[str, Any], ...]] = []
        turn: Turn | None = self
        while turn is not None:
            chain.append(turn.messages)
            turn = turn.parent
        out: list[dict[str, Any]] = []
        for messages in reversed(chain):
            out.extend(messages)
        return out


@dataclass(frozen=True, slots=True)
class StoredResponse:
    body: bytes  # the Response object as JSON, as `GET /v1/responses/{id}` returns it
    turn: Turn
    owner: str | None  # the key id that created it; other keys get a 404, as if it did not exist
    expires_at: float


class ResponseStore:
    """Bounded, time-limited map of response id -> StoredResponse (see the module docstring)."""

    def __init__(
        self, retention_s: float, max_stored: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.retention_s = retention_s
        self.max_stored = max_stored
        self._clock = clock
        self._entries: dict[str, StoredResponse] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def configure(self, retention_s: float, max_stored: int) -> None:
        """Apply new limits (config reload) keeping what is stored; the next write enforces them."""
        self.retention_s = retention_s
        self.max_stored = max_stored

    def put(self, response_id: str, body: bytes, turn: Turn, owner: str | None) -> None:
        if self.max_stored <= 0:
            return
        now = self._clock()
        self._purge(now)
        self._entries[response_id] = StoredResponse(body, turn, owner, now + self.retention_s)
        while len(self._entries) > self.max_stored:
            del self._entries[next(iter(self._entries))]

    def get(self, response_id: str, owner: str | None) -> StoredResponse | None:
        entry = self._entries.get(response_id)
        if entry is None:
            return None
        if entry.expires_at <= self._clock():
            del self._entries[response_id]
            return None
        return entry if entry.owner == owner else None

    def delete(self, response_id: str, owner: str | None) -> bool:
        if self.get(response_id, owner) is None:
            return False
        del self._entries[response_id]
        return True

    def _purge(self, now: float) -> None:
        entries = self._entries
        while entries:
            oldest = next(iter(entries))
            if entries[oldest].expires_at > now:
                return
            del entries[oldest]
