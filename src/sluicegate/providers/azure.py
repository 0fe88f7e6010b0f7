"""Azure OpenAI: Chat Completions forwarded to a resource's deployment, streams passed through (reference §2).

Azure speaks OpenAI's wire format on two URL surfaces. The dated one puts the deployment in the
path and requires `?api-version=YYYY-MM-DD[-preview]`; the v1 one (`api_version: v1` or
`preview`) is OpenAI's own path layout under `/openai/v1/` with the deployment as body `model`.
Both are precomputed once per deployment by `endpoint()`, which also places embeddings and legacy
completions (inherited from the OpenAI-family base) on the right surface.

Auth is an `api-key` header, or a Microsoft Entra ID token given as `headers: {authorization:
"Bearer ..."}` — never both, so an explicit token wins over a key picked up from AZURE_API_KEY.

What differs from OpenAI on the wire: a stream may open with a chunk that has empty `choices`
and only `prompt_filter_results`, which naive clients index into and crash on — its filter
results are moved onto the first real chunk instead; choices carry `content_filter_results`
(passed through); a prompt blocked by the content filter is a 400 with `code: content_filter`
(kept, so the SDK raises BadRequestError with that code); 429s carry `retry-after` and
`retry-after-ms` (both kept); and `stream_options.include_usage` exists only from API version
2024-09-01(-preview) on, so older versions get neither the option nor streamed usage.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import ConfigError, UpstreamProtocolError
from ..types import ChatRequest, Usage
from ._openai_compat import OpenAICompatibleBase, error_from_body
from .base import DONE_FRAME, StreamTranslator, loads_lenient, sse_frame

if TYPE_CHECKING:
    from ..config.schema import ModelEntry
    from ..upstream.sse import SSEEvent

DEFAULT_API_VERSION = "2024-10-21"  # the latest GA dated version at the time of writing
# `api_version` values that select the v1 surface (`/openai/v1/...`, deployment as body `model`).
_V1_VERSIONS = frozenset({"v1", "preview"})
_DATED_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")
# First dated version accepting `stream_options.include_usage`; older ones reject the key with a 400.
_STREAM_USAGE_SINCE = "2024-09-01"
# Paths that live under `/openai/deployments/{id}/` on the dated surface (the SDK's
# `_deployments_endpoints`); everything else is directly under `/openai/`.
_DEPLOYMENT_PATHS = frozenset(
    {
        "completions",
        "chat/completions",
        "embeddings",
        "audio/transcriptions",
        "audio/translations",
        "audio/speech",
        "images/generations",
        "images/edits",
    }
)


def _has_authorization(headers: Mapping[str, str]) -> bool:
    return any(name.lower() == "authorization" for name in headers)


def _resource_root(api_base: str) -> str:
    """`https://NAME.openai.azure.com` from any of the forms users paste (with `/openai`, `/openai/v1`)."""
    root = api_base.rstrip("/")
    for suffix in ("/openai/v1", "/openai"):
        if root.endswith(suffix):
            return root[: -len(suffix)]
    return root


def stream_usage_supported(api_version: str) -> bool:
    """Whether this API version accepts `stream_options.include_usage` (reference §2)."""
    return api_version in _V1_VERSIONS or api_version[:10] >= _STREAM_USAGE_SINCE


class AzureStream(StreamTranslator):
    """OpenAI-shaped Azure stream passed through, minus the choice-less `prompt_filter_results` chunk.

    Azure sends prompt filter results as a first chunk with `"choices": []`, `"id": ""` and
    `"created": 0`; clients that read `choices[0]` of every chunk break on it (reference §2). The
    results are kept by attaching them to the first chunk that has choices, which is re-encoded;
    every other event goes out byte for byte.
    """

    __slots__ = ("_held_filters", "hide_usage_chunk")

    def __init__(self, hide_usage_chunk: bool) -> None:
        self.hide_usage_chunk = hide_usage_chunk
        self.usage: Usage | None = None
        self.finished = False
        self._held_filters: Any = None

    def feed(self, event: SSEEvent) -> list[bytes]:
        data = event.data
        if data[:6] == b"[DONE]":
            self.finished = True
            return [DONE_FRAME]
        try:
            chunk = loads_lenient(data)
        except orjson.JSONDecodeError as exc:
            raise UpstreamProtocolError("the provider sent a stream event that is not JSON") from exc
        if not isinstance(chunk, dict):
            raise UpstreamProtocolError("the provider sent a stream event that is not a JSON object")
        if chunk.get("error"):
            raise error_from_body(chunk, 500, {})
        choices = chunk.get("choices")
        usage = chunk.get("usage")
        if usage:
            self.usage = Usage.from_openai(usage)
            if not choices:
                return [] if self.hide_usage_chunk else [sse_frame(data)]
        if not choices:
            filters = chunk.get("prompt_filter_results")
            if filters is not None:
                self._held_filters = filters
            return []  # nothing a client can use: no choices, no usage
        if self._held_filters is not None:
            chunk["prompt_filter_results"] = self._held_filters
            self._held_filters = None
            return [sse_frame(orjson.dumps(chunk))]
        return [sse_frame(data)]


class AzureAdapter(OpenAICompatibleBase):
    provider = "azure"

    def __init__(self, entry: ModelEntry) -> None:
        # endpoint() runs inside the base __init__ (to precompute the chat URL): set its inputs first.
        self.api_version = entry.api_version or DEFAULT_API_VERSION
        self.v1 = self.api_version in _V1_VERSIONS
        self.deployment = entry.upstream_model
        self.root = _resource_root(entry.api_base or "")
        # Per deployment rather than per class: it depends on this deployment's api_version.
        self.supports_stream_usage = stream_usage_supported(self.api_version)  # type: ignore[misc]
        super().__init__(entry)

    @staticmethod
    def check(entry: ModelEntry, path: str) -> None:
        if not entry.api_base:
            raise ConfigError(
                f"{path}.api_base: required for provider azure: the resource endpoint, "
                "e.g. https://NAME.openai.azure.com"
            )
        if not entry.api_key and not _has_authorization(entry.headers):
            raise ConfigError(
                f"{path}.api_key: required for provider azure (or set AZURE_API_KEY), unless a Microsoft "
                'Entra ID token is given as headers: {authorization: "Bearer <token>"}'
            )
        version = entry.api_version
        if version is not None and version not in _V1_VERSIONS and not _DATED_VERSION.fullmatch(version):
            raise ConfigError(
                f"{path}.api_version: {version!r} is not an Azure OpenAI API version "
                f"(a date such as {DEFAULT_API_VERSION!r} or '2025-04-01-preview', or 'v1' / 'preview')"
            )

    def endpoint(self, path: str) -> str:
        """The URL of one API path on this deployment's surface (dated or v1)."""
        path = path.lstrip("/")
        if self.v1:
            url = f"{self.root}/openai/v1/{path}"
            # `preview` opts the v1 surface into preview features; plain v1 takes no api-version.
            return url if self.api_version == "v1" else _with_query(url, "api-version=preview")
        if path in _DEPLOYMENT_PATHS:
            url = f"{self.root}/openai/deployments/{self.deployment}/{path}"
        else:
            url = f"{self.root}/openai/{path}"
        return _with_query(url, f"api-version={self.api_version}")

    def auth_headers(self, api_key: str) -> dict[str, str]:
        # Azure wants exactly one credential: an explicit Entra token beats a key from the environment.
        if _has_authorization(self.entry.headers):
            return {}
        return {"api-key": api_key}

    def prepare_body(self, request: ChatRequest) -> dict[str, Any]:
        body = super().prepare_body(request)
        if not self.supports_stream_usage and "stream_options" in body:
            # API versions before 2024-09-01 reject the key outright; usage cannot be streamed there.
            del body["stream_options"]
        return body

    def stream_translator(self, request: ChatRequest) -> StreamTranslator:
        return AzureStream(hide_usage_chunk=self.supports_stream_usage and not request.include_usage)


def _with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"
