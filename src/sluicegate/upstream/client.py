"""The one pooled HTTP client every adapter's requests go through, and the transport interface.

A `Transport` sends an `UpstreamRequest` and gives back an `UpstreamStream`: status and headers
first, then the body read whole or chunk by chunk. `HttpTransport` does it over one shared
aiohttp session per worker (keep-alive pools per host, never a client per request); the `mock`
provider plugs in its own in-process transport, and tests can too. aiohttp and asyncio
exceptions are converted to our tree here and nowhere else.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Protocol

import aiohttp

from ..errors import UpstreamConnectionError, UpstreamTimeoutError
from ..types import UpstreamRequest


class UpstreamStream(Protocol):
    status: int
    headers: Mapping[str, str]  # case-insensitive lookups

    async def read(self) -> bytes: ...

    def iter_chunks(self) -> AsyncIterator[bytes]: ...

    def close(self) -> None: ...


class Transport(Protocol):
    async def open(
        self, request: UpstreamRequest, *, timeout_s: float, connect_timeout_s: float, stream: bool
    ) -> UpstreamStream:
        """Send the request and return once the status line and headers have arrived.

        The transport enforces the deadlines: for a complete reply `timeout_s` bounds the whole
        exchange (read included); for a stream it bounds each silence between reads.
        """
        ...


class _AiohttpStream:
    __slots__ = ("_resp", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status
        self.headers: Mapping[str, str] = resp.headers  # already case-insensitive: no copy per call

    async def read(self) -> bytes:
        try:
            return await self._resp.read()
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeoutError("the provider did not finish its reply in time") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamConnectionError(
                f"connection to the provider broke: {exc.__class__.__name__}"
            ) from exc
        finally:
            self._resp.release()

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.content.iter_any():
                yield chunk
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeoutError("the provider stream went idle for too long") from exc
        except aiohttp.ClientPayloadError as exc:
            raise UpstreamConnectionError("the provider cut the stream") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamConnectionError(
                f"connection to the provider broke: {exc.__class__.__name__}"
            ) from exc

    def close(self) -> None:
        # close(), not release(): a half-read stream must not go back into the keep-alive pool.
        self._resp.close()


class HttpTransport:
    """Shared aiohttp session; created inside the running loop at server start."""

    def __init__(self, *, limit_per_host: int = 0) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._limit_per_host = limit_per_host
        # One ClientTimeout per distinct deadline, built once: there are only a few per config.
        self._timeouts: dict[tuple[float, float, bool], aiohttp.ClientTimeout] = {}

    def _timeout(self, timeout_s: float, connect_timeout_s: float, stream: bool) -> aiohttp.ClientTimeout:
        key = (timeout_s, connect_timeout_s, stream)
        found = self._timeouts.get(key)
        if found is None:
            if stream:
                # A stream may legitimately run for a long time; what must not happen is silence.
                found = aiohttp.ClientTimeout(total=None, connect=connect_timeout_s, sock_read=timeout_s)
            else:
                found = aiohttp.ClientTimeout(total=timeout_s, connect=connect_timeout_s)
            self._timeouts[key] = found
        return found

    def _ensure(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=0,  # the gateway's own limits (max_parallel, rpm) bound concurrency, not the pool
                limit_per_host=self._limit_per_host,
                ttl_dns_cache=300,
                keepalive_timeout=60,
            )
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True)
        return self._session

    async def open(
        self, request: UpstreamRequest, *, timeout_s: float, connect_timeout_s: float, stream: bool
    ) -> UpstreamStream:
        session = self._ensure()
        timeout = self._timeout(timeout_s, connect_timeout_s, stream)
        try:
            resp = await session.request(
                request.method,
                request.url,
                data=request.body or None,
                headers=request.headers,
                timeout=timeout,
                allow_redirects=False,
            )
        except (TimeoutError, aiohttp.ServerTimeoutError, aiohttp.ConnectionTimeoutError) as exc:
            raise UpstreamTimeoutError("the provider did not answer in time") from exc
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamConnectionError(f"cannot connect to the provider at {exc.host}:{exc.port}") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamConnectionError(
                f"connection to the provider failed: {exc.__class__.__name__}"
            ) from exc
        return _AiohttpStream(resp)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            # Give aiohttp's SSL/keep-alive transports a tick to close (documented aiohttp advice).
            await asyncio.sleep(0)
