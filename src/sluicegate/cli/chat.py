"""`sluicegate chat`: stream a reply from a running gateway to the terminal."""

from __future__ import annotations

import asyncio
import sys

import aiohttp
import orjson

from ..upstream.sse import SSEDecoder


async def _ask(
    session: aiohttp.ClientSession, url: str, key: str, model: str, messages: list[dict[str, str]]
) -> str | None:
    body = {"model": model, "messages": messages, "stream": True}
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    async with session.post(
        f"{url.rstrip('/')}/v1/chat/completions", data=orjson.dumps(body), headers=headers
    ) as resp:
        if resp.status != 200:
            payload = await resp.read()
            try:
                message = orjson.loads(payload)["error"]["message"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                message = payload.decode("utf-8", "replace")
            sys.stderr.write(f"error {resp.status}: {message}\n")
            return None
        decoder = SSEDecoder()
        parts: list[str] = []
        async for chunk in resp.content.iter_any():
            for event in decoder.feed(chunk):
                if event.data == b"[DONE]":
                    continue
                data = orjson.loads(event.data)
                if "error" in data:
                    sys.stderr.write(f"\nstream error: {data['error'].get('message')}\n")
                    return None
                for choice in data.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        parts.append(text)
                        sys.stdout.write(text)
                        sys.stdout.flush()
        sys.stdout.write("\n")
        return "".join(parts)


async def run_chat(url: str, key: str, model: str, prompt: str | None) -> int:
    messages: list[dict[str, str]] = []
    try:
        async with aiohttp.ClientSession() as session:
            if prompt is not None:
                messages.append({"role": "user", "content": prompt})
                return 0 if await _ask(session, url, key, model, messages) is not None else 1
            while True:
                try:
                    line = await asyncio.to_thread(input, "> ")
                except EOFError:
                    return 0
                if not line.strip():
                    continue
                messages.append({"role": "user", "content": line})
                answer = await _ask(session, url, key, model, messages)
                if answer is None:
                    messages.pop()
                else:
                    messages.append({"role": "assistant", "content": answer})
    except aiohttp.ClientConnectorError:
        sys.stderr.write(f"cannot connect to the gateway at {url}; is `sluicegate serve` running?\n")
        return 1
