"""The "Python floor" of SPEC §9: a bare forwarder with nothing but uvicorn+httptools+uvloop and aiohttp.

`python -m sluicegate.bench.passthrough UPSTREAM_URL PORT` forwards every POST body to
UPSTREAM_URL and returns the reply: no auth, no validation, no headers of its own. `sluicegate
bench` measures it in the same run as the gateway, so "at least 0.8x the bare passthrough" is checked
on the same machine and load.
"""

from __future__ import annotations

import sys
from typing import Any

import aiohttp
import uvicorn


class Passthrough:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if self.session is None:
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        async with self.session.post(
            self.upstream, data=body, headers={"content-type": "application/json"}
        ) as resp:
            payload = await resp.read()
            status = resp.status
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def main() -> None:
    upstream, port = sys.argv[1], int(sys.argv[2])
    uvicorn.run(
        Passthrough(upstream),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        lifespan="off",
    )


if __name__ == "__main__":
    main()
