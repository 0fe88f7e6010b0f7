"""How the `keys` and `spend` commands reach the admin API: over HTTP, or directly on the database.

HTTP (the default) talks to a running gateway (`--url`, `--master-key` or $SLUICEGATE_MASTER_KEY):
the change goes through the same checks, audit log and cache invalidation as any admin call.
`--direct` opens the database named by the config instead and runs the same admin code
(api/admin/routes.py `dispatch`) in this process: for bootstrapping before the first start, or
when the gateway is down. It migrates the database first and publishes the cache invalidation
through Redis when the config has `redis_url` (without Redis, running gateways see the change
within their 1 s key-cache TTL).
"""

from __future__ import annotations

import asyncio
import getpass
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Protocol

DEFAULT_URL = "http://127.0.0.1:8400"


class AdminCallError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class AdminClient(Protocol):
    def call(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None) -> Any: ...


def _query_string(query: dict[str, Any] | None) -> str:
    if not query:
        return ""
    pairs = {
        k: ("true" if v is True else "false" if v is False else v) for k, v in query.items() if v is not None
    }
    return urllib.parse.urlencode(pairs)


def _error_message(raw: bytes, status: int) -> str:
    try:
        return str(json.loads(raw)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return raw.decode(errors="replace")[:500] or f"HTTP {status}"


class HttpAdmin:
    def __init__(self, url: str, master_key: str, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.master_key = master_key
        self.timeout_s = timeout_s

    def call(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None) -> Any:
        qs = _query_string(query)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}{path}" + (f"?{qs}" if qs else ""),
            data=data,
            method=method,
            headers={"authorization": f"Bearer {self.master_key}", "content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise AdminCallError(exc.code, _error_message(exc.read(), exc.code)) from exc
        except urllib.error.URLError as exc:
            raise AdminCallError(0, f"cannot reach the gateway at {self.url}: {exc.reason}") from exc


class DirectAdmin:
    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path

    def call(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None) -> Any:
        return asyncio.run(self._call(method, path, query, body))

    async def _call(self, method: str, path: str, query: dict[str, Any] | None, body: Any) -> Any:
        from ..api.admin.routes import dispatch
        from ..api.admin.service import AdminService
        from ..auth.cache import publish_once
        from ..config.loader import load_config
        from ..errors import GatewayError
        from ..store.db import Database
        from ..store.migrate import upgrade_db

        config = load_config(self.config_path)
        db = Database(config.database_url)
        redis_url = config.redis_url

        async def invalidate(kind: str, ident: str | None) -> bool:
            return await publish_once(redis_url, kind, ident) if redis_url else True

        try:
            await upgrade_db(db)
            service = AdminService(db, tiers=config.tiers, invalidate=invalidate)
            raw = b"" if body is None else json.dumps(body).encode()
            try:
                _, payload = await dispatch(
                    service, method, path, _query_string(query), raw, actor=f"cli:{_user()}"
                )
            except GatewayError as exc:
                raise AdminCallError(exc.http_status, exc.message) from exc
            return json.loads(payload)
        finally:
            await db.close()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
