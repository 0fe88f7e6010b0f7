"""`KeyCache`: virtual keys resolved in memory, so authenticating a request needs no database round trip.

A secret is hashed and looked up in a dict of resolved entries (the key with its user and team,
already turned into a `Principal`). A miss loads the key, user and team in one query; concurrent
misses for the same secret share that query (single flight); unknown secrets are remembered for
`negative_ttl_s` so a client retrying a bad key does not reach the database on every call.

How a change made through the admin API reaches every process (the revocation window):
- with `redis_url`: admin changes publish on the `sluicegate:invalidate` channel and every process
  drops the affected entries as the message arrives (milliseconds). Entries are still reloaded
  after `subscribed_ttl_s` as a safety net. While the subscription is down, the no-Redis rule
  applies, and all entries are dropped when it comes back (messages may have been missed).
- without Redis: an entry is used for at most `ttl_s` (1 s) after it was read from the database.
  Hot keys are refreshed in the background from half that age, so requests do not wait for it.

Either way a revoked, expired or rotated-out key stops working on every process within 1 s.
If the database is unreachable when an entry is due, the stale entry keeps serving for up to
`stale_on_error_s` (an admin cannot commit a revocation the database cannot store either).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import GatewayError
from .keys import hash_secret
from .principal import Principal, principal_for
from .records import KeyRecord, now_ms

log = logging.getLogger("sluicegate.auth")

CHANNEL = "sluicegate:invalidate"
INVALIDATION_KINDS = ("key", "team", "user", "all")


class KeyStoreUnavailableError(GatewayError):
    """The key could not be checked: the database is unreachable and nothing usable is cached."""

    status = 503
    default_code = "key_store_unavailable"


class _Entry:
    __slots__ = ("key", "loaded", "principal", "refreshing", "via_previous")

    def __init__(self, key: KeyRecord, principal: Principal, via_previous: bool, loaded: float) -> None:
        self.key = key
        self.principal = principal
        self.via_previous = via_previous
        self.loaded = loaded  # time.monotonic() of the database read
        self.refreshing = False

    def usable(self) -> bool:
        return self.key.usable(self.via_previous, now_ms())


class KeyCache:
    def __init__(
        self,
        store: Any,  # store.Store (typed loosely: auth must not import the database layer)
        *,
        tiers: Mapping[str, Sequence[str]] | None = None,
        redis_url: str | None = None,
        ttl_s: float = 1.0,
        subscribed_ttl_s: float = 300.0,
        negative_ttl_s: float = 1.0,
        stale_on_error_s: float = 30.0,
        max_entries: int = 100_000,
        max_negative: int = 10_000,
    ) -> None:
        self._store = store
        self._tiers: Mapping[str, Sequence[str]] = tiers or {}
        self._redis_url = redis_url
        self._ttl_s = min(ttl_s, 1.0)  # the 1 s promise is not configurable away
        self._subscribed_ttl_s = subscribed_ttl_s
        self._negative_ttl_s = min(negative_ttl_s, 1.0)
        self._stale_on_error_s = stale_on_error_s
        self._max_entries = max_entries
        self._max_negative = max_negative
        self._entries: dict[str, _Entry] = {}
        self._negative: dict[str, float] = {}
        self._inflight: dict[str, asyncio.Future[_Entry | None]] = {}
        self._epoch = 0  # bumped by every invalidation: a load that raced one is not cached
        self._subscribed = False
        self._listener: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._publisher: Any = None
        self._closed = False
        self.loads = 0  # database reads, for tests and metrics

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Begin listening for invalidations (with Redis); call once the event loop runs."""
        if self._redis_url and self._listener is None and not self._closed:
            self._listener = asyncio.get_running_loop().create_task(
                self._listen(), name="sluicegate-key-cache"
            )

    async def close(self) -> None:
        self._closed = True
        tasks = [*self._background, *([self._listener] if self._listener else [])]
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded, and without swallowing our own cancellation: redis-py's teardown of a
            # cancelled pub/sub read can hang (StreamWriter.wait_closed), which held worker
            # shutdown for the whole drain timeout.
            await asyncio.wait(tasks, timeout=1.0)
        self._listener = None
        if self._publisher is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._publisher.aclose(), 1.0)
            self._publisher = None

    def set_tiers(self, tiers: Mapping[str, Sequence[str]]) -> None:
        """Adopt the tiers of a reloaded config; entries resolved under the old ones are dropped."""
        if dict(tiers) != dict(self._tiers):
            self._tiers = dict(tiers)
            self.invalidate_local("all")

    @property
    def subscribed(self) -> bool:
        return self._subscribed

    def _ttl(self) -> float:
        return self._subscribed_ttl_s if self._subscribed else self._ttl_s

    # -- lookups -------------------------------------------------------------------------------

    def peek(self, secret: str) -> Principal | None:
        """The principal of a usable key already in memory and fresh enough; None = ask `resolve`."""
        entry = self._entries.get(hash_secret(secret))
        if entry is None:
            return None
        age = time.monotonic() - entry.loaded
        ttl = self._ttl()
        if age >= ttl or not entry.usable():
            return None
        if age >= ttl / 2 and not entry.refreshing:
            self._refresh_in_background(entry)
        return entry.principal

    async def resolve(self, secret: str) -> Principal | None:
        """The principal of a usable key; None for unknown, revoked, expired or rotated-out secrets."""
        if self._listener is None and self._redis_url and not self._closed:
            await self.start()  # a Runtime built by a reload, or a cache used outside a lifespan
        entry = await self._entry(hash_secret(secret))
        return entry.principal if entry is not None and entry.usable() else None

    async def lookup(self, secret: str) -> KeyRecord | None:
        """The record of a usable key (same rules as `resolve`)."""
        entry = await self._entry(hash_secret(secret))
        return entry.key if entry is not None and entry.usable() else None

    async def _entry(self, key_hash: str) -> _Entry | None:
        now = time.monotonic()
        entry = self._entries.get(key_hash)
        if entry is not None and now - entry.loaded < self._ttl():
            return entry
        if entry is None:
            until = self._negative.get(key_hash)
            if until is not None:
                if now < until:
                    return None
                del self._negative[key_hash]
        try:
            return await self._load(key_hash)
        except Exception as exc:
            if entry is not None and now - entry.loaded < self._stale_on_error_s:
                log.warning("key cache: database unreachable, serving a cached key", exc_info=True)
                return entry
            raise KeyStoreUnavailableError("cannot check the API key: the key store is unavailable") from exc

    async def _load(self, key_hash: str) -> _Entry | None:
        pending = self._inflight.get(key_hash)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[_Entry | None] = asyncio.get_running_loop().create_future()
        self._inflight[key_hash] = future
        epoch = self._epoch
        try:
            self.loads += 1
            found = await self._store.load_for_auth(key_hash)
            loaded = time.monotonic()
            entry = None
            if found is not None:
                principal = principal_for(found.key, found.user, found.team, self._tiers)
                entry = _Entry(found.key, principal, found.via_previous, loaded)
            if epoch == self._epoch:
                self._remember(key_hash, entry, loaded)
            future.set_result(entry)
            return entry
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else should log it
            raise
        finally:
            del self._inflight[key_hash]

    def _remember(self, key_hash: str, entry: _Entry | None, now: float) -> None:
        if entry is None:
            self._entries.pop(key_hash, None)
            if len(self._negative) >= self._max_negative:
                self._negative.clear()  # a spray of random keys must not grow memory without bound
            self._negative[key_hash] = now + self._negative_ttl_s
            return
        self._negative.pop(key_hash, None)
        self._entries.pop(key_hash, None)  # re-insert at the end: eviction takes the oldest
        if len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[key_hash] = entry

    def _refresh_in_background(self, entry: _Entry) -> None:
        entry.refreshing = True
        key_hash = entry.key.previous_key_hash if entry.via_previous else entry.key.key_hash
        if key_hash is None:
            return
        task = asyncio.get_running_loop().create_task(self._refresh(key_hash, entry))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _refresh(self, key_hash: str, entry: _Entry) -> None:
        try:
            await self._load(key_hash)
        except Exception:
            log.warning("key cache: background refresh failed", exc_info=True)
        finally:
            entry.refreshing = False

    # -- invalidation --------------------------------------------------------------------------

    def invalidate_local(self, kind: str, ident: str | None = None) -> None:
        """Drop the entries of one key, or of every key of a team or user, or everything."""
        self._epoch += 1
        if kind == "all" or ident is None:
            self._entries.clear()
            self._negative.clear()
            return
        attribute = {"key": "id", "team": "team_id", "user": "user_id"}.get(kind)
        if attribute is None:
            return
        stale = [h for h, e in self._entries.items() if getattr(e.key, attribute) == ident]
        for key_hash in stale:
            del self._entries[key_hash]

    async def publish_invalidation(self, kind: str, ident: str | None = None) -> bool:
        """Invalidate here and tell every other process (Redis); False if the message could not be sent.

        Without Redis, other processes pick the change up within their 1 s TTL anyway.
        """
        self.invalidate_local(kind, ident)
        if not self._redis_url:
            return True
        try:
            if self._publisher is None:
                import redis.asyncio as aioredis

                self._publisher = aioredis.Redis.from_url(self._redis_url, socket_timeout=2.0)
            await self._publisher.publish(CHANNEL, f"{kind}:{ident or ''}")
            return True
        except Exception:
            log.error("key cache: could not publish an invalidation", exc_info=True)
            return False

    def _on_message(self, data: bytes | str) -> None:
        text = data.decode() if isinstance(data, bytes) else data
        kind, _, ident = text.partition(":")
        if kind in INVALIDATION_KINDS:
            self.invalidate_local(kind, ident or None)

    async def _listen(self) -> None:
        import redis.asyncio as aioredis

        backoff = 0.2
        # `_closed` is checked on every wake-up, not only cancellation: redis-py's get_message can
        # swallow a cancel that lands as its own timeout fires (Python 3.11 wait_for), which left
        # the task running and held worker shutdown for the whole drain timeout.
        while not self._closed:
            client = aioredis.Redis.from_url(
                self._redis_url or "",
                health_check_interval=5,
                socket_keepalive=True,
                socket_connect_timeout=2.0,
            )
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                # Wait for the confirmation: only from then on is no message missed.
                while not self._closed:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "subscribe":
                        break
                # Anything loaded before now may have missed a message sent while unsubscribed.
                self.invalidate_local("all")
                self._subscribed = True
                backoff = 0.2
                while not self._closed:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._on_message(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception:
                if self._subscribed:
                    log.warning("key cache: invalidation channel lost; using the 1 s TTL", exc_info=True)
                self._subscribed = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                self._subscribed = False
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await client.aclose()


async def publish_once(redis_url: str, kind: str, ident: str | None) -> bool:
    """Send one invalidation from a process without a cache (the CLI's `--direct` mode)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
    try:
        await client.publish(CHANNEL, f"{kind}:{ident or ''}")
        return True
    except Exception:
        log.error("could not publish a key-cache invalidation", exc_info=True)
        return False
    finally:
        await client.aclose()
