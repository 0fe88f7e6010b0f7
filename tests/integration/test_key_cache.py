"""The key cache: hot-path auth from memory, and revocation reaching every process within 1 s.

Two `KeyCache`s on one database stand for two gateway processes: an admin change goes through
the admin service of the first; the second must stop honouring the key within 1 s, through Redis
pub/sub when configured and through the entry TTL without it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from sluicegate.api.admin.schemas import KeyCreate, KeyUpdate, RotateIn, TeamCreate, UserCreate
from sluicegate.api.admin.service import AdminService
from sluicegate.auth.cache import KeyCache
from sluicegate.auth.principal import MASTER, Authenticator
from sluicegate.errors import AuthenticationError, PermissionDeniedError
from sluicegate.store.db import Database
from sluicegate.store.facade import Store
from sluicegate.store.migrate import upgrade_db


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    db = Database(f"sqlite:///{tmp_path}/keys.db")
    await upgrade_db(db)
    yield Store(db)
    await db.close()


async def _wait_until(predicate: object, limit_s: float) -> float:
    """Seconds until the async predicate holds; fails after `limit_s`."""
    began = time.monotonic()
    while time.monotonic() - began < limit_s:
        if await predicate():  # type: ignore[operator]
            return time.monotonic() - began
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition not met within {limit_s} s")


async def _create(service: AdminService, **fields: object) -> tuple[str, str]:
    created = await service.create_key(KeyCreate(**fields), actor="test")  # type: ignore[arg-type]
    return created.id, created.key


async def test_revocation_reaches_another_process_within_one_second_without_redis(store: Store) -> None:
    """Without Redis a revoked key stops working in a second cache within its 1 s entry TTL."""
    first, second = KeyCache(store), KeyCache(store)
    service = AdminService(store.db, invalidate=first.publish_invalidation)
    key_id, secret = await _create(service, alias="a")
    assert await first.resolve(secret) is not None
    assert await second.resolve(secret) is not None
    loads = second.loads
    for _ in range(2000):  # the hot path: answered from memory
        assert second.peek(secret) is not None or await second.resolve(secret) is not None
    assert second.loads - loads <= 2

    revoked_at = time.monotonic()
    await service.revoke_key(key_id, actor="test")
    assert await first.resolve(secret) is None  # the process that made the change: at once

    async def refused() -> bool:
        return second.peek(secret) is None and await second.resolve(secret) is None

    elapsed = await _wait_until(refused, limit_s=2.0)
    assert time.monotonic() - revoked_at <= 1.1, elapsed


async def test_revocation_reaches_another_process_through_redis_pubsub(store: Store, redis_url: str) -> None:
    """With Redis the second cache drops the key as the invalidation arrives, long before any TTL."""
    first = KeyCache(store, redis_url=redis_url, subscribed_ttl_s=300)
    second = KeyCache(store, redis_url=redis_url, subscribed_ttl_s=300)
    await first.start()
    await second.start()
    try:
        await _wait_until(_subscribed(first, second), limit_s=5)
        service = AdminService(store.db, invalidate=first.publish_invalidation)
        key_id, secret = await _create(service, rpm=10)
        principal = await second.resolve(secret)
        assert principal is not None and principal.scopes[0].rpm == 10
        await asyncio.sleep(1.2)  # past the no-Redis TTL: only pub/sub can refresh it now
        loads = second.loads
        assert second.peek(secret) is not None and second.loads == loads

        await service.update_key(key_id, KeyUpdate(rpm=20), actor="test")

        async def updated() -> bool:
            p = second.peek(secret) or await second.resolve(secret)
            return p is not None and p.scopes[0].rpm == 20

        assert await _wait_until(updated, limit_s=1.0) < 0.5
        await service.revoke_key(key_id, actor="test")

        async def refused() -> bool:
            return second.peek(secret) is None and await second.resolve(secret) is None

        assert await _wait_until(refused, limit_s=1.0) < 0.5
    finally:
        await first.close()
        await second.close()


def _subscribed(*caches: KeyCache) -> object:
    async def check() -> bool:
        return all(c.subscribed for c in caches)

    return check


async def test_lost_redis_subscription_falls_back_to_the_ttl(store: Store, redis_url: str) -> None:
    """When the invalidation channel drops, entries expire after 1 s again until it is back."""
    cache = KeyCache(store, redis_url=redis_url, subscribed_ttl_s=300)
    await cache.start()
    try:
        await _wait_until(_subscribed(cache), limit_s=5)
        service = AdminService(store.db)  # publishes nothing: only the TTL can reveal the change
        key_id, secret = await _create(service)
        assert await cache.resolve(secret) is not None
        admin = aioredis.Redis.from_url(redis_url)
        try:
            await admin.client_kill_filter(_type="pubsub")
        finally:
            await admin.aclose()
        await service.revoke_key(key_id, actor="test")

        async def refused() -> bool:
            return cache.peek(secret) is None and await cache.resolve(secret) is None

        assert await _wait_until(refused, limit_s=2.5) <= 1.5
        await _wait_until(_subscribed(cache), limit_s=5)  # and it reconnects
    finally:
        await cache.close()


async def test_concurrent_misses_share_one_database_read(store: Store) -> None:
    """Fifty concurrent first requests with one key cause one database read (single flight)."""
    service = AdminService(store.db)
    _, secret = await _create(service)
    cache = KeyCache(store)
    results = await asyncio.gather(*(cache.resolve(secret) for _ in range(50)))
    assert all(r is not None for r in results)
    assert cache.loads == 1


async def test_unknown_keys_are_remembered_briefly(store: Store) -> None:
    """Retrying an unknown key does not reach the database on every call."""
    cache = KeyCache(store)
    for _ in range(100):
        assert await cache.resolve("sk-sg-not-a-real-key") is None
    assert cache.loads == 1


async def test_expired_keys_stop_working_without_a_reload(store: Store) -> None:
    """A temporary key works until its ttl and is refused right after, even from the cache."""
    service = AdminService(store.db)
    _, secret = await _create(service, ttl_s=0.3)
    cache = KeyCache(store)
    assert await cache.resolve(secret) is not None
    await asyncio.sleep(0.35)
    assert cache.peek(secret) is None
    assert await cache.resolve(secret) is None


async def test_rotated_secret_works_only_during_its_grace(store: Store) -> None:
    """After a rotation with grace the old secret works until the grace ends; the new one at once."""
    cache = KeyCache(store)
    service = AdminService(store.db, invalidate=cache.publish_invalidation)
    key_id, old = await _create(service)
    assert await cache.resolve(old) is not None
    rotated = await service.rotate_key(key_id, RotateIn(grace_s=0.4), actor="test")
    assert await cache.resolve(rotated.key) is not None
    assert await cache.resolve(old) is not None
    await asyncio.sleep(0.45)
    assert await cache.resolve(old) is None
    assert await cache.resolve(rotated.key) is not None


async def test_principal_merges_key_user_team_and_tier(store: Store) -> None:
    """Every scope's allowlist must allow a model; the tier narrows its scope; limits come per scope."""
    tiers = {"basic": ["a", "b", "c"]}
    service = AdminService(store.db, tiers=tiers)
    await service.create_account("team", TeamCreate(id="t", models=["a", "b"], rpm=100), actor="test")
    await service.create_account("user", UserCreate(id="u", tier="basic", budget_usd=5.0), actor="test")
    _, secret = await _create(service, team_id="t", user_id="u", models=["b", "c"], tpm=1000, role="admin")
    principal = await KeyCache(store, tiers=tiers).resolve(secret)
    assert principal is not None
    assert principal.allowed_models == frozenset({"b"})
    assert [(s.kind, s.id) for s in principal.scopes] == [
        ("key", principal.key_id),
        ("user", "u"),
        ("team", "t"),
    ]
    assert principal.scopes[0].tpm == 1000 and principal.scopes[1].budget_usd == 5.0
    assert principal.scopes[2].rpm == 100
    assert principal.is_admin and principal.team_id == "t" and principal.user_id == "u"


async def test_a_tier_missing_from_the_config_allows_nothing(store: Store) -> None:
    """A key whose tier was removed from the config fails closed rather than gaining every model."""
    service = AdminService(store.db, tiers={"gone": ["a"]})
    _, secret = await _create(service, tier="gone")
    principal = await KeyCache(store, tiers={}).resolve(secret)
    assert principal is not None and principal.allowed_models == frozenset()


async def test_team_change_invalidates_every_key_of_the_team(store: Store) -> None:
    """Changing a team's limits reaches the cached keys of that team through the team invalidation."""
    cache = KeyCache(store)
    service = AdminService(store.db, invalidate=cache.publish_invalidation)
    from sluicegate.api.admin.schemas import TeamUpdate

    await service.create_account("team", TeamCreate(id="t", rpm=1), actor="test")
    _, secret = await _create(service, team_id="t")
    before = await cache.resolve(secret)
    assert before is not None and before.scopes[-1].rpm == 1
    await service.update_account("team", "t", TeamUpdate(rpm=2), actor="test")
    after = cache.peek(secret) or await cache.resolve(secret)
    assert after is not None and after.scopes[-1].rpm == 2


async def test_authenticator_checks_master_key_then_virtual_keys_and_client_address(store: Store) -> None:
    """The master key needs no lookup; a virtual key resolves; allowed_ips refuses other addresses."""
    cache = KeyCache(store)
    auth = Authenticator("sk-master-0123456789", cache)
    assert await auth.resolve("sk-master-0123456789") is MASTER
    assert cache.loads == 0
    service = AdminService(store.db)
    _, secret = await _create(service, allowed_ips=["10.0.0.0/8", "::1"])
    principal = await auth.resolve(secret, ("10.1.2.3", 5555))
    assert principal.kind == "virtual" and principal.key_id is not None
    await auth.resolve(secret, ("::1", 1))
    with pytest.raises(PermissionDeniedError):
        await auth.resolve(secret, ("192.168.0.1", 5555))
    with pytest.raises(PermissionDeniedError):
        await auth.resolve(secret, None)
    with pytest.raises(AuthenticationError):
        await auth.resolve("sk-sg-wrong")
    with pytest.raises(AuthenticationError):
        await auth.resolve(None)
