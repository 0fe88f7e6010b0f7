"""The admin routes about the running gateway rather than the database: models and config reload.

They need the Gateway itself (reload swaps its Runtime), which the table-driven routes of
routes.py do not see, so server/app.py sends these paths here first. Same rule as every admin
route: the master key or a key with role `admin`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...auth.principal import extract_key
from ...errors import NotFoundError, PermissionDeniedError
from ...server.http import JSON_CT, Scope, Send, send_bytes
from . import config_reload, models

if TYPE_CHECKING:
    from ...pipeline.context import RequestContext
    from ...server.app import Gateway
    from ...server.runtime import Runtime

PREFIXES = (models.PREFIX, config_reload.PATH)


async def runtime_admin(
    gateway: Gateway, rt: Runtime, ctx: RequestContext, scope: Scope, headers: dict[bytes, bytes], send: Send
) -> None:
    path: str = scope["path"]
    method: str = scope["method"]
    key = extract_key(headers.get(b"authorization"), headers.get(b"x-api-key"))
    principal = await rt.authenticator.resolve(key, scope.get("client"))
    ctx.principal = principal
    if not principal.is_admin:
        raise PermissionDeniedError(
            "the admin API needs the master key or a key with role 'admin'", code="admin_required"
        )
    if path == config_reload.PATH:
        answer: tuple[int, bytes] | None = await config_reload.handle(gateway, method)
    else:
        answer = await models.handle(gateway, rt, method, path)
    if answer is None:
        raise NotFoundError(f"no admin route for {method} {path}")
    status, body = answer
    await send_bytes(send, status, body, [JSON_CT, (b"x-request-id", ctx.request_id)])
