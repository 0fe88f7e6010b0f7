"""`POST /admin/config/reload`: re-read the config file now, as SIGHUP does, and say how it went.

A file that does not validate changes nothing and answers 400 with the config error, which
quotes the bad field (`models[1].weight: must be > 0, got -1`). Under `--workers N` the worker
that took the call reloads first, then asks the supervisor to SIGHUP every worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from ...errors import ConfigError, InvalidRequestError, MethodNotAllowedError
from ...server.reload import notify_other_workers, reload_config

if TYPE_CHECKING:
    from ...server.app import Gateway

PATH = "/admin/config/reload"


async def handle(gateway: Gateway, method: str) -> tuple[int, bytes]:
    if method != "POST":
        raise MethodNotAllowedError(f"{method} is not allowed on {PATH}; use POST")
    try:
        outcome = await reload_config(gateway)
    except ConfigError as exc:
        raise InvalidRequestError(
            f"config not reloaded, the old one keeps serving: {exc.message}", code="invalid_config"
        ) from exc
    body = outcome.as_dict()
    body["workers"] = "all" if notify_other_workers() else "this"
    return 200, orjson.dumps(body)
