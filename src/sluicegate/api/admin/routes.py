"""`/admin/...`: the admin API's route table, request decoding and the raw ASGI entry point.

`ROUTES` is the one description of the API: `dispatch` matches against it, openapi.py renders it.
`dispatch` is transport-free (method, path, query string, body in; status and JSON bytes out), so
the CLI's `--direct` mode runs the very same code on the database without a server.

Every route needs the master key or a key whose role is `admin`; `/admin/openapi.json` is public
(it describes the API, it holds no data). Query parameters a route does not know are refused, like
unknown body fields, so a typo never silently widens a filter.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from ...auth.principal import extract_key
from ...errors import (
    InvalidJSONError,
    InvalidRequestError,
    MethodNotAllowedError,
    NotFoundError,
    PermissionDeniedError,
)
from ...store.ledger import GROUP_BY
from ...store.paging import CursorError
from .schemas import (
    AuditPage,
    Deleted,
    KeyCreate,
    KeyCreated,
    KeyOut,
    KeyPage,
    KeyUpdate,
    LogOut,
    LogPage,
    RotateIn,
    SpendReport,
    TeamCreate,
    TeamOut,
    TeamPage,
    TeamUpdate,
    UserCreate,
    UserOut,
    UserPage,
    UserUpdate,
)
from .service import AdminService

PREFIX = "/admin/"
OPENAPI_PATH = "/admin/openapi.json"
MAX_ADMIN_BODY = 1024 * 1024
_JSON_CT = (b"content-type", b"application/json")


@dataclass(frozen=True)
class Param:
    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})


@dataclass
class Call:
    """One admin request after routing: what a handler needs, nothing about the transport."""

    service: AdminService
    path_params: dict[str, str]
    query: dict[str, str]
    body: bytes
    actor: str
    request_id: str | None

    def decode(self, kind: type[Any]) -> Any:
        return decode_body(self.body, kind)

    def q_int(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.query.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise InvalidRequestError(
                f"{name}: expected an integer from {low} to {high}, got {raw!r}", param=name
            )
        return value

    def q_bool(self, name: str, default: bool) -> bool:
        raw = self.query.get(name)
        if raw is None:
            return default
        if raw.lower() in ("true", "1", "yes"):
            return True
        if raw.lower() in ("false", "0", "no"):
            return False
        raise InvalidRequestError(f"{name}: expected true or false, got {raw!r}", param=name)

    def q_time(self, name: str, *, end: bool = False) -> int | None:
        raw = self.query.get(name)
        return None if raw is None else parse_time(raw, name, end=end)


Handler = Callable[[Call], Awaitable[tuple[int, Any]]]


@dataclass
class Route:
    method: str
    template: str
    handler: Handler
    summary: str
    response: Any
    body: Any = None
    status: int = 200
    query: tuple[Param, ...] = ()
    regex: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template)
        self.regex = re.compile(f"^{pattern}$")


def parse_time(raw: str, name: str, *, end: bool = False) -> int:
    """An ISO 8601 date or date-time as ms since the epoch. Naive times are UTC.

    A bare date as `end` means the end of that day, so `start=2025-01-01&end=2025-01-31` is all
    of January.
    """
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            day = datetime.fromisoformat(raw).replace(tzinfo=UTC)
            moment = day + timedelta(days=1) if end else day
        else:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidRequestError(
            f"{name}: expected an ISO 8601 date or date-time "
            f"(e.g. 2025-01-31 or 2025-01-31T12:00:00Z), got {raw!r}",
            param=name,
        ) from exc
    return int(moment.timestamp() * 1000)


_AT_PATH = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]*)`$")


def decode_body(body: bytes, kind: type[Any]) -> Any:
    """JSON body -> request struct; every failure a 400 naming the field when there is one."""
    try:
        return msgspec.json.decode(body.strip() or b"{}", type=kind)
    except msgspec.ValidationError as exc:
        raise _validation_error(str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise InvalidJSONError(f"request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise InvalidJSONError("request body is nested too deeply") from exc


def _validation_error(text: str) -> InvalidRequestError:
    match = _AT_PATH.match(text)
    message, path = (match["msg"], (match["path"] or "").lstrip(".")) if match else (text, "")
    unknown = _UNKNOWN.match(message)
    if unknown is not None:
        name = f"{path}.{unknown['field']}" if path else unknown["field"]
        return InvalidRequestError(f"{name}: unknown field", param=name, code="unknown_field")
    if not path:
        return InvalidRequestError(f"invalid request body: {message}")
    return InvalidRequestError(f"{path}: {message}", param=path)


def _encode(value: Any) -> bytes:
    return msgspec.json.encode(value)


# -- handlers ------------------------------------------------------------------------------------


async def _create_key(call: Call) -> tuple[int, Any]:
    body = call.decode(KeyCreate)
    return 201, await call.service.create_key(body, actor=call.actor, request_id=call.request_id)


async def _list_keys(call: Call) -> tuple[int, Any]:
    return 200, await call.service.list_keys(
        limit=call.q_int("limit", 100, 1, 1000),
        cursor=_cursor(call),
        team_id=call.query.get("team_id"),
        user_id=call.query.get("user_id"),
        include_revoked=call.q_bool("include_revoked", True),
    )


async def _get_key(call: Call) -> tuple[int, Any]:
    return 200, await call.service.get_key(call.path_params["key_id"])


async def _update_key(call: Call) -> tuple[int, Any]:
    body = call.decode(KeyUpdate)
    key_id = call.path_params["key_id"]
    return 200, await call.service.update_key(key_id, body, actor=call.actor, request_id=call.request_id)


async def _revoke_key(call: Call) -> tuple[int, Any]:
    key_id = call.path_params["key_id"]
    return 200, await call.service.revoke_key(key_id, actor=call.actor, request_id=call.request_id)


async def _rotate_key(call: Call) -> tuple[int, Any]:
    body = call.decode(RotateIn)
    key_id = call.path_params["key_id"]
    return 200, await call.service.rotate_key(key_id, body, actor=call.actor, request_id=call.request_id)


def _account_handlers(kind: Any, create: type[Any], update: type[Any]) -> dict[str, Handler]:
    async def create_one(call: Call) -> tuple[int, Any]:
        body = call.decode(create)
        return 201, await call.service.create_account(
            kind, body, actor=call.actor, request_id=call.request_id
        )

    async def list_all(call: Call) -> tuple[int, Any]:
        limit = call.q_int("limit", 100, 1, 1000)
        return 200, await call.service.list_accounts(kind, limit=limit, cursor=_cursor(call))

    async def get_one(call: Call) -> tuple[int, Any]:
        return 200, await call.service.get_account(kind, call.path_params["id"])

    async def update_one(call: Call) -> tuple[int, Any]:
        body = call.decode(update)
        ident = call.path_params["id"]
        return 200, await call.service.update_account(
            kind, ident, body, actor=call.actor, request_id=call.request_id
        )

    async def delete_one(call: Call) -> tuple[int, Any]:
        ident = call.path_params["id"]
        return 200, await call.service.delete_account(
            kind, ident, actor=call.actor, request_id=call.request_id
        )

    return {
        "create": create_one,
        "list": list_all,
        "get": get_one,
        "update": update_one,
        "delete": delete_one,
    }


async def _spend(call: Call) -> tuple[int, Any]:
    group_by = call.query.get("group_by", "key")
    if group_by not in GROUP_BY:
        raise InvalidRequestError(
            f"group_by: expected one of {', '.join(GROUP_BY)}, got {group_by!r}", param="group_by"
        )
    names: tuple[str, ...] = ("key_id", "user_id", "team_id", "model")
    filters = {name: call.query[name] for name in names if name in call.query}
    start, end = call.q_time("start"), call.q_time("end", end=True)
    _check_range(start, end)
    return 200, await call.service.spend(group_by, start=start, end=end, filters=filters)


async def _logs(call: Call) -> tuple[int, Any]:
    filters: dict[str, Any] = {
        name: call.query[name] for name in ("key_id", "team_id", "user_id", "model") if name in call.query
    }
    status = call.query.get("status")
    if status is not None:
        if status not in ("ok", "error") and not (status.isdigit() and 100 <= int(status) <= 599):
            raise InvalidRequestError(
                f"status: expected an HTTP status, 'ok' or 'error', got {status!r}", param="status"
            )
        filters["status"] = status
    start, end = call.q_time("start"), call.q_time("end", end=True)
    _check_range(start, end)
    filters["start"], filters["end"] = start, end
    limit = call.q_int("limit", 100, 1, 1000)
    return 200, await call.service.logs(filters, limit=limit, cursor=_cursor(call))


async def _log(call: Call) -> tuple[int, Any]:
    return 200, await call.service.log(call.path_params["request_id"])


async def _audit(call: Call) -> tuple[int, Any]:
    return 200, await call.service.audit(
        limit=call.q_int("limit", 100, 1, 1000),
        cursor=_cursor(call),
        object_type=call.query.get("object_type"),
        object_id=call.query.get("object_id"),
        verify=call.q_bool("verify", False),
    )


def _cursor(call: Call) -> str | None:
    return call.query.get("cursor")


def _check_range(start: int | None, end: int | None) -> None:
    if start is not None and end is not None and end <= start:
        raise InvalidRequestError("end: must be after start", param="end")


# -- the route table -----------------------------------------------------------------------------

_PAGE = (
    Param("limit", "Page size, 1-1000 (default 100).", {"type": "integer", "minimum": 1, "maximum": 1000}),
    Param("cursor", "`next_cursor` of the previous page."),
)
_RANGE = (
    Param("start", "Inclusive start: ISO 8601 date or date-time (UTC when no offset)."),
    Param("end", "Exclusive end: ISO 8601 date-time; a bare date includes that whole day."),
)
_teams = _account_handlers("team", TeamCreate, TeamUpdate)
_users = _account_handlers("user", UserCreate, UserUpdate)


def _account_routes(
    plural: str, handlers: dict[str, Handler], out: Any, page: Any, create: Any, update: Any
) -> list[Route]:
    base, item = f"/admin/{plural}", f"/admin/{plural}/{{id}}"
    noun = plural[:-1]
    return [
        Route("POST", base, handlers["create"], f"Create a {noun}", out, body=create, status=201),
        Route("GET", base, handlers["list"], f"List {plural}", page, query=_PAGE),
        Route("GET", item, handlers["get"], f"Get a {noun}", out),
        Route("PATCH", item, handlers["update"], f"Update a {noun}", out, body=update),
        Route(
            "DELETE", item, handlers["delete"], f"Delete a {noun} (refused while it has active keys)", Deleted
        ),
    ]


ROUTES: list[Route] = [
    Route("POST", "/admin/keys", _create_key, "Create a virtual key (the secret is in this response only)",
          KeyCreated, body=KeyCreate, status=201),
    Route("GET", "/admin/keys", _list_keys, "List keys", KeyPage, query=(
        *_PAGE,
        Param("team_id", "Only keys of this team."),
        Param("user_id", "Only keys of this user."),
        Param("include_revoked", "Include revoked keys (default true).", {"type": "boolean"}),
    )),
    Route("GET", "/admin/keys/{key_id}", _get_key, "Get a key", KeyOut),
    Route("PATCH", "/admin/keys/{key_id}", _update_key, "Update a key's limits, allowlists or owner",
          KeyOut, body=KeyUpdate),
    Route("DELETE", "/admin/keys/{key_id}", _revoke_key, "Revoke a key (the record stays)", KeyOut),
    Route("POST", "/admin/keys/{key_id}/rotate", _rotate_key,
          "Give a key a new secret; the old one works for grace_s seconds", KeyCreated, body=RotateIn),
    *_account_routes("teams", _teams, TeamOut, TeamPage, TeamCreate, TeamUpdate),
    *_account_routes("users", _users, UserOut, UserPage, UserCreate, UserUpdate),
    Route("GET", "/admin/spend", _spend, "Spend from the ledger, grouped", SpendReport, query=(
        Param("group_by", "key, user, team, model, provider or day (default key).",
              {"type": "string", "enum": list(GROUP_BY)}),
        *_RANGE,
        Param("key_id", "Only this key."),
        Param("user_id", "Only this user."),
        Param("team_id", "Only this team."),
        Param("model", "Only this model."),
    )),
    Route("GET", "/admin/logs", _logs, "Request log, newest first", LogPage, query=(
        *_PAGE,
        *_RANGE,
        Param("key_id", "Only this key."),
        Param("team_id", "Only this team."),
        Param("user_id", "Only this user."),
        Param("model", "Only this model."),
        Param("status", "An HTTP status, or ok (< 400) / error (>= 400)."),
    )),
    Route("GET", "/admin/logs/{request_id}", _log, "One request, with bodies if they were logged", LogOut),
    Route("GET", "/admin/audit", _audit, "Audit log of admin changes, newest first", AuditPage, query=(
        *_PAGE,
        Param("object_type", "key, team or user."),
        Param("object_id", "Only this object."),
        Param("verify", "Also verify the whole hash chain (default false).", {"type": "boolean"}),
    )),
]  # fmt: skip


async def dispatch(
    service: AdminService,
    method: str,
    path: str,
    query_string: bytes | str,
    body: bytes,
    *,
    actor: str,
    request_id: str | None = None,
) -> tuple[int, bytes]:
    """Run one admin request; GatewayErrors propagate for the caller to render."""
    allowed = []
    for route in ROUTES:
        match = route.regex.match(path)
        if match is None:
            continue
        if route.method != method:
            allowed.append(route.method)
            continue
        query = _parse_query(query_string, route)
        call = Call(service, match.groupdict(), query, body, actor, request_id)
        try:
            status, payload = await route.handler(call)
        except CursorError as exc:
            raise InvalidRequestError("cursor: not a cursor this listing returned", param="cursor") from exc
        return status, _encode(payload)
    if allowed:
        raise MethodNotAllowedError(f"{method} is not allowed on {path}; use {' or '.join(allowed)}")
    raise NotFoundError(f"no admin route for {method} {path}")


def _parse_query(query_string: bytes | str, route: Route) -> dict[str, str]:
    text = query_string.decode("latin-1") if isinstance(query_string, bytes) else query_string
    known = {p.name for p in route.query}
    out: dict[str, str] = {}
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(f"malformed query string: {exc}") from exc
    for name, value in pairs:
        if name not in known:
            accepted = ", ".join(sorted(known)) or "none"
            raise InvalidRequestError(
                f"{name}: unknown query parameter (accepted: {accepted})", param=name, code="unknown_field"
            )
        if name in out:
            raise InvalidRequestError(f"{name}: given more than once", param=name)
        out[name] = value
    return out


# -- ASGI ----------------------------------------------------------------------------------------


async def admin(rt: Any, ctx: Any, scope: Any, headers: dict[bytes, bytes], receive: Any, send: Any) -> None:
    """The ASGI handler for every `/admin/...` path (routed here by server/app.py)."""
    from ...server.http import read_body, send_bytes

    path: str = scope["path"]
    method: str = scope["method"]
    if path == OPENAPI_PATH:
        if method != "GET":
            raise MethodNotAllowedError(f"{method} is not allowed on {path}; use GET")
        from .openapi import document_bytes

        await send_bytes(send, 200, document_bytes(), [_JSON_CT, (b"x-request-id", ctx.request_id)])
        return
    key = extract_key(headers.get(b"authorization"), headers.get(b"x-api-key"))
    principal = await rt.authenticator.resolve(key, scope.get("client"))
    ctx.principal = principal
    if not principal.is_admin:
        raise PermissionDeniedError(
            "the admin API needs the master key or a key with role 'admin'", code="admin_required"
        )
    body = b""
    if method in ("POST", "PATCH", "PUT"):
        body = await read_body(receive, MAX_ADMIN_BODY, headers.get(b"content-length"))
    service = AdminService(rt.store.db, tiers=rt.config.tiers, invalidate=rt.keys.publish_invalidation)
    status, payload = await dispatch(
        service,
        method,
        path,
        scope.get("query_string", b""),
        body,
        actor=principal.key_id or "unknown",
        request_id=ctx.request_id.decode(),
    )
    await send_bytes(send, status, payload, [_JSON_CT, (b"x-request-id", ctx.request_id)])


def owns_admin_path(path: str) -> bool:
    """Whether `path` is one of this API's routes (other `/admin/...` routes live elsewhere)."""
    if not path.startswith(PREFIX):
        return False
    return path == OPENAPI_PATH or any(route.regex.match(path) for route in ROUTES)
