"""The mock provider served over HTTP as a fake OpenAI server (`sluicegate mock-server`).

Used as the benchmark's upstream when nginx is not installed, and by users who want a
deterministic OpenAI endpoint in their own tests.
"""

from __future__ import annotations

from typing import Any

import orjson

from ..config.schema import MockOptions
from ..types import UpstreamRequest
from .mock import MockTransport


class MockServerApp:
    def __init__(self, options: MockOptions) -> None:
        self.transport = MockTransport(options)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] != "POST" or not scope["path"].endswith("/chat/completions"):
            payload = orjson.dumps(
                {
                    "error": {
                        "message": "not found",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                }
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 404,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return
        stream = await self.transport.open(
            UpstreamRequest("POST", scope["path"], {}, body),
            timeout_s=600,
            connect_timeout_s=10,
            stream=False,
        )
        headers = [(k.encode(), v.encode()) for k, v in stream.headers.items()]
        await send({"type": "http.response.start", "status": stream.status, "headers": headers})
        async for chunk in stream.iter_chunks():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
