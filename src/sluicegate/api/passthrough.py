"""`/passthrough/{provider}/{path}`: a provider's own API through the gateway, bytes in and bytes out.

New provider features (files, batches, realtime sessions, beta endpoints) work on day one this
way, with the gateway's auth, its provider credentials, logging and usage. Nothing is
translated: the caller's method, path, query and body go to the provider, and the provider's
status, headers and body come back chunk by chunk as they arrive (SSE keeps working).

What changes on the way:
- The upstream host is never taken from the request. `{provider}` names a configured
  deployment (the first of that provider or preset in config order, a `passthrough:` mapping
  in the config, or `/passthrough/model/{name}/...`), and `{path}` is joined to that
  deployment's base URL; dot segments, empty segments and backslashes are refused (400), so no
  request can reach another host or climb out of the base URL's path (SPEC §10, no SSRF).
- The caller's credentials (the gateway key in `authorization`, `x-api-key`, `api-key` or
  `x-goog-api-key`, and cookies), hop-by-hop headers and `x-sluicegate-*` controls are dropped;
  the deployment's credentials are injected the way its adapter sends them, its configured
  `headers` win over the caller's, and protocol defaults (`anthropic-version`, Azure's
  `api-version`) are added only when the caller sent none. Adapters that sign per attempt
  (`needs_signing`: SigV4, OAuth) sign the final request through their `sign` hook.
- Usage is read from what passes, without holding anything back: a JSON body's `usage` (kept
  aside up to a cap and parsed at the end), or the usage events of an SSE / NDJSON stream, in
  every provider shape of reference §8. It lands on the request context and in the
  `passthrough` log line.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from time import perf_counter
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, unquote_to_bytes, urlsplit

import orjson
import yarl

from ..auth.principal import extract_key
from ..errors import (
    ConfigError,
    GatewayError,
    InvalidRequestError,
    MethodNotAllowedError,
    NotFoundError,
    PermissionDeniedError,
    render_anthropic,
    render_openai,
)
from ..providers.base import loads_lenient
from ..server.http import DisconnectWatcher, Receive, Send, read_body
from ..types import UpstreamRequest, Usage
from ..upstream.ndjson import NDJSONDecoder
from ..upstream.sse import SSEDecoder

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..config.schema import Config
    from ..pipeline.context import RequestContext
    from ..routing.deployment import Deployment
    from ..routing.router import ModelGroup
    from ..server.http import Scope
    from ..server.runtime import Runtime

log = logging.getLogger("sluicegate")

PREFIX = "/passthrough/"
# `/passthrough/model/{name}/...` addresses a model group instead of a provider.
MODEL_SEGMENT = "model"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})

# Where each SDK puts its key: the gateway key may arrive in any of them, and none is forwarded.
_CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "x-goog-api-key"})
_KEY_CARRIERS = frozenset(name.encode() for name in _CREDENTIAL_HEADERS)
# Request headers never forwarded: hop-by-hop (RFC 9110 §7.6.1), what aiohttp sets itself, the
# caller's credentials, and the caller's network details (the gateway is the provider's client).
_DROP_REQUEST = _KEY_CARRIERS | frozenset(
    {
        b"host",
        b"content-length",
        b"connection",
        b"keep-alive",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"expect",
        b"accept-encoding",
        b"cookie",
        b"forwarded",
        b"x-real-ip",
    }
)
_DROP_REQUEST_PREFIXES = (b"x-sluicegate-", b"x-forwarded-")
# Response headers never passed back: hop-by-hop, the ones uvicorn writes itself (date), and
# what only makes sense on the provider's origin (cookies, HTTP/3 advertisements).
_DROP_RESPONSE = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "date",
        "set-cookie",
        "alt-svc",
    }
)
# Adapter headers that describe the chat body rather than the provider: the caller's own apply.
_BODY_HEADERS = frozenset({"content-type", "content-length", "accept", "accept-encoding"})

# Where a provider's API lives when the model entry has no `api_base` (reference §1). The
# OpenAI-style vendors keep their version segment so only their API's paths are reachable.
_DEFAULT_BASES = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "mistral": "https://api.mistral.ai/v1",
    "cohere": "https://api.cohere.com",
    "ollama": "http://127.0.0.1:11434",
}
_DEFAULT_VERTEX_LOCATION = "us-central1"
# How each provider takes an API key, for adapters whose precomputed headers do not carry one.
_KEY_HEADER = {
    "openai": ("authorization", "Bearer "),
    "openai-compatible": ("authorization", "Bearer "),
    "mistral": ("authorization", "Bearer "),
    "cohere": ("authorization", "Bearer "),
    "ollama": ("authorization", "Bearer "),
    "bedrock": ("authorization", "Bearer "),  # Bedrock API keys; SigV4 deployments sign instead
    "anthropic": ("x-api-key", ""),
    "azure": ("api-key", ""),
    "gemini": ("x-goog-api-key", ""),
}
# Protocol headers the provider requires; the caller's value wins when it sent one.
_DEFAULT_HEADERS = {"anthropic": {"anthropic-version": "2023-06-01"}}
# Query parameters that carry the caller's credentials (Gemini's `?key=`): never forwarded.
_CREDENTIAL_QUERY = {"gemini": frozenset({b"key"})}

# A JSON body larger than this is still passed through, but not kept aside for its usage.
_JSON_USAGE_CAP = 4 * 1024 * 1024


class PassthroughTarget:
    """One deployment as a pass-through destination: base URL and headers precomputed at config load."""

    __slots__ = (
        "api_version",
        "base_path",
        "base_segments",
        "default_headers",
        "deployment",
        "drop_query",
        "forced_headers",
        "netloc",
        "origin",
        "provider",
        "scheme",
    )

    def __init__(self, deployment: Deployment, base_url: str) -> None:
        entry = deployment.entry
        adapter = deployment.adapter
        self.deployment = deployment
        self.provider = entry.provider
        parts = urlsplit(base_url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        # Compared with every upstream URL as yarl parses it (see `url`).
        origin = yarl.URL(self.origin)
        self.scheme = origin.scheme
        self.netloc = origin.raw_authority
        self.base_path = parts.path.rstrip("/")
        self.base_segments = tuple(s for s in self.base_path.split("/") if s)
        forced: dict[str, str] = {}
        defaults: dict[str, str] = {}
        configured = {name.lower() for name in entry.headers}
        adapter_headers = getattr(adapter, "headers", None)
        if isinstance(adapter_headers, dict):
            for name, value in adapter_headers.items():
                lower = name.lower()
                if lower in _BODY_HEADERS:
                    continue
                if lower in _CREDENTIAL_HEADERS or lower in configured:
                    forced[lower] = value
                else:
                    defaults[lower] = value
        for name, value in _DEFAULT_HEADERS.get(self.provider, {}).items():
            defaults.setdefault(name, value)
        forced.update((name.lower(), value) for name, value in entry.headers.items())
        key_header = _KEY_HEADER.get(self.provider)
        if entry.api_key and key_header is not None and not _CREDENTIAL_HEADERS.intersection(forced):
            forced[key_header[0]] = key_header[1] + entry.api_key
        # identity: a body decompressed by aiohttp would no longer match the headers we pass back.
        forced["accept-encoding"] = "identity"
        self.forced_headers = forced
        self.default_headers = defaults
        self.drop_query = _CREDENTIAL_QUERY.get(self.provider, frozenset())
        version = getattr(adapter, "api_version", None) or entry.api_version
        # Azure's dated surface needs `?api-version=`; the caller's own value wins.
        self.api_version = version if self.provider == "azure" and isinstance(version, str) else None

    def url(self, tail: str, query: bytes) -> str:
        """The upstream URL for a checked path tail (raw, percent-encoding kept) and raw query string."""
        segments = tail.split("/")[1:] if tail else []
        # The caller writes the provider's documented path (`/v1/models`); a base URL that already
        # ends with its leading segments (`.../v1`) is not repeated.
        base = self.base_segments
        overlap = 0
        for k in range(min(len(base), len(segments)), 0, -1):
            if base[len(base) - k :] == tuple(segments[:k]):
                overlap = k
                break
        rest = "/".join(segments[overlap:])
        path = f"{self.base_path}/{rest}" if rest or not self.base_path else self.base_path
        query_text = self._query(query, path)
        try:
            # In the form aiohttp puts on the wire (yarl re-normalises escapes), so that a signer
            # signs exactly what is sent.
            wire = yarl.URL(self.origin + path + ("?" + query_text if query_text else ""))
        except ValueError as exc:
            raise InvalidRequestError(f"invalid pass-through path {tail!r}") from exc
        # Belt and braces: whatever the path held, the request must stay on the configured host.
        if wire.scheme != self.scheme or wire.raw_authority != self.netloc:
            raise InvalidRequestError(f"the pass-through path {tail!r} is not a path on the provider's API")
        return str(wire)

    def _query(self, query: bytes, path: str) -> str:
        if self.drop_query or self.api_version:
            pairs = [pair for pair in query.split(b"&") if pair]
            pairs = [p for p in pairs if unquote_to_bytes(p.partition(b"=")[0]) not in self.drop_query]
            version = self.api_version
            # Plain v1 takes no api-version; `preview` opts any surface into preview features;
            # a dated version belongs to the dated surface only.
            wanted = version == "preview" or (version != "v1" and not path.startswith("/openai/v1"))
            if (
                version
                and wanted
                and all(unquote_to_bytes(p.partition(b"=")[0]) != b"api-version" for p in pairs)
            ):
                pairs.append(b"api-version=" + quote(version).encode())
            query = b"&".join(pairs)
        # A raw `#` would end the URL's path-and-query for the HTTP client; keep it a literal.
        return query.replace(b"#", b"%23").decode("latin-1")

    def headers(self, raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
        """The caller's headers minus what is never forwarded, plus this deployment's credentials."""
        named: set[bytes] = set()
        for name, value in raw:
            if name == b"connection":
                # Headers the caller declared hop-by-hop are dropped too (RFC 9110 §7.6.1).
                named.update(token.strip().lower() for token in value.split(b","))
        out: dict[str, str] = {}
        for name, value in raw:
            if name in _DROP_REQUEST or name in named or name.startswith(_DROP_REQUEST_PREFIXES):
                continue
            key = name.decode("latin-1")
            text = value.decode("latin-1")
            out[key] = f"{out[key]}, {text}" if key in out else text
        for header, default in self.default_headers.items():
            out.setdefault(header, default)
        out.update(self.forced_headers)
        return out


def _base_url(deployment: Deployment) -> str | None:
    """The deployment's API root: its `api_base`, else the provider's documented host."""
    entry = deployment.entry
    base: str | None = entry.api_base
    provider = entry.provider
    if base is None:
        if provider == "bedrock":
            region = (
                entry.aws_region
                or getattr(deployment.adapter, "region", None)
                or os.environ.get("AWS_REGION")
                or os.environ.get("AWS_DEFAULT_REGION")
            )
            base = f"https://bedrock-runtime.{region}.amazonaws.com" if region else None
        elif provider == "vertex":
            location = entry.vertex_location or _DEFAULT_VERTEX_LOCATION
            host = (
                "aiplatform.googleapis.com"
                if location == "global"
                else f"{location}-aiplatform.googleapis.com"
            )
            base = f"https://{host}"
        else:
            base = _DEFAULT_BASES.get(provider)
    if base is None:
        found = getattr(deployment.adapter, "base_url", None)
        base = found if isinstance(found, str) and found else None
    if base is None:
        return None
    base = base.rstrip("/")
    # Forms the adapters accept as api_base beyond the API root.
    if provider == "anthropic" and base.endswith("/v1/messages"):
        base = base[: -len("/messages")]
    elif provider == "azure":
        for suffix in ("/openai/v1", "/openai"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
                break
    elif provider == "vertex":
        base = base.removesuffix("/v1")  # `/v1beta1/...` paths stay reachable
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        return None
    return base


def _matches(provider: str, preset: str | None, name: str) -> bool:
    return provider == name or (provider == "openai-compatible" and preset == name)


class PassthroughRoutes:
    """Pass-through names (providers, presets, model groups) -> targets, built once per runtime."""

    __slots__ = ("by_model", "by_name", "model_names")

    def __init__(self, config: Config, groups: Mapping[str, ModelGroup]) -> None:
        # Deployments in config order: "the first deployment of a provider" means the first entry.
        by_entry = {id(d.entry): d for group in groups.values() for d in group.deployments}
        targets: list[PassthroughTarget] = []
        for entry in config.models:
            deployment = by_entry.get(id(entry))
            if deployment is None or entry.provider == "mock":
                continue  # mock answers in process: it has no HTTP API to pass through to
            base = _base_url(deployment)
            if base is not None:
                targets.append(PassthroughTarget(deployment, base))
        self.by_name: dict[str, PassthroughTarget] = {}
        self.by_model: dict[str, PassthroughTarget] = {}
        for target in targets:
            entry = target.deployment.entry
            self.by_name.setdefault(entry.provider, target)
            if entry.preset:
                self.by_name.setdefault(entry.preset, target)
            self.by_model.setdefault(entry.name, target)
        for name, model in config.passthrough.items():
            for target in targets:
                entry = target.deployment.entry
                if entry.name == model and _matches(entry.provider, entry.preset, name):
                    self.by_name[name] = target
                    break
        # Longest first, so `a/b` wins over `a` for `/passthrough/model/a/b/...`.
        self.model_names = sorted(self.by_model, key=len, reverse=True)

    def resolve(self, path: str) -> tuple[PassthroughTarget, str | None, str]:
        """(target, model name when addressed by model, decoded path tail) for a `/passthrough/...` path."""
        rest = path[len(PREFIX) :]
        name, slash, tail = rest.partition("/")
        if name == MODEL_SEGMENT:
            for model in self.model_names:
                if tail == model or tail.startswith(model + "/"):
                    return self.by_model[model], model, tail[len(model) :]
            raise NotFoundError(
                f"no model named '{tail.split('/')[0]}' can be passed through "
                "(use /passthrough/model/<model name>/<provider path>)"
            )
        target = self.by_name.get(name)
        if target is None:
            known = ", ".join(sorted(self.by_name)) or "none"
            raise NotFoundError(
                f"no provider named '{name}' is configured for pass-through (configured: {known}; "
                "or use /passthrough/model/<model name>/...)"
            )
        return target, None, slash + tail


def check_config(config: Config) -> None:
    """Validate the `passthrough:` mapping (provider or preset name -> model name); paths quoted."""
    from ..providers.openai_compatible import PRESETS
    from ..providers.registry import provider_names

    known = (set(provider_names()) - {"mock"}) | set(PRESETS)
    for name, model in config.passthrough.items():
        path = f"passthrough.{name}"
        if name not in known:
            raise ConfigError(
                f"{path}: unknown provider or preset {name!r} (known: {', '.join(sorted(known))})"
            )
        entries = [e for e in config.models if e.name == model]
        if not entries:
            raise ConfigError(f"{path}: no model named {model!r} is configured")
        if not any(_matches(e.provider, e.preset, name) for e in entries):
            raise ConfigError(f"{path}: model {model!r} has no deployment of provider {name}")


def error_renderer(path: str) -> Callable[[GatewayError], bytes]:
    """Errors the gateway itself raises on a pass-through route, in the addressed API's dialect."""
    return render_anthropic if path.startswith(PREFIX + "anthropic/") else render_openai


# ---------------------------------------------------------------------------------------------
# Usage in every provider's shape (reference §8)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _usage_object(raw: dict[str, Any]) -> Usage:
    """A `usage` object of any provider, normalised so prompt tokens include cached ones."""
    if "prompt_tokens" in raw or "completion_tokens" in raw:  # OpenAI and OpenAI-compatible
        prompt_details = _dict(raw.get("prompt_tokens_details"))
        completion_details = _dict(raw.get("completion_tokens_details"))
        return Usage(
            prompt_tokens=_int(raw.get("prompt_tokens")),
            completion_tokens=_int(raw.get("completion_tokens")),
            # DeepSeek reports cache hits beside the details object.
            cached_tokens=_int(prompt_details.get("cached_tokens"))
            or _int(raw.get("prompt_cache_hit_tokens")),
            cache_write_tokens=_int(prompt_details.get("cache_write_tokens")),
            reasoning_tokens=_int(completion_details.get("reasoning_tokens")),
        )
    if "inputTokens" in raw or "outputTokens" in raw:  # Bedrock: inputTokens excludes cache reads/writes
        read, write = _int(raw.get("cacheReadInputTokens")), _int(raw.get("cacheWriteInputTokens"))
        return Usage(
            prompt_tokens=_int(raw.get("inputTokens")) + read + write,
            completion_tokens=_int(raw.get("outputTokens")),
            cached_tokens=read,
            cache_write_tokens=write,
        )
    if "tokens" in raw or "billed_units" in raw:  # Cohere v2
        # billed_units first, as the cohere adapter does: `tokens` also counts Cohere's own prompt template.
        counts = _dict(raw.get("billed_units")) or _dict(raw.get("tokens"))
        return Usage(
            prompt_tokens=_int(counts.get("input_tokens")),
            completion_tokens=_int(counts.get("output_tokens")),
            cached_tokens=_int(raw.get("cached_tokens")),
        )
    if "input_tokens_details" in raw or "output_tokens_details" in raw or "total_tokens" in raw:
        # OpenAI Responses: input_tokens already includes the cached ones.
        return Usage(
            prompt_tokens=_int(raw.get("input_tokens")),
            completion_tokens=_int(raw.get("output_tokens")),
            cached_tokens=_int(_dict(raw.get("input_tokens_details")).get("cached_tokens")),
            reasoning_tokens=_int(_dict(raw.get("output_tokens_details")).get("reasoning_tokens")),
        )
    # Anthropic: input_tokens excludes cache reads and writes.
    read, write = _int(raw.get("cache_read_input_tokens")), _int(raw.get("cache_creation_input_tokens"))
    return Usage(
        prompt_tokens=_int(raw.get("input_tokens")) + read + write,
        completion_tokens=_int(raw.get("output_tokens")),
        cached_tokens=read,
        cache_write_tokens=write,
    )


def read_usage(obj: Any) -> Usage | None:
    """Usage from one JSON body or stream event, wherever its provider puts it; None if it has none."""
    if not isinstance(obj, dict):
        return None
    raw = obj.get("usage")
    if isinstance(raw, dict):
        return _usage_object(raw)
    meta = obj.get("usageMetadata")  # Gemini and Vertex
    if isinstance(meta, dict):
        thoughts = _int(meta.get("thoughtsTokenCount"))
        return Usage(
            prompt_tokens=_int(meta.get("promptTokenCount")) + _int(meta.get("toolUsePromptTokenCount")),
            completion_tokens=_int(meta.get("candidatesTokenCount")) + thoughts,
            cached_tokens=_int(meta.get("cachedContentTokenCount")),
            reasoning_tokens=thoughts,
        )
    # Anthropic message_start, Responses response.completed, Cohere message-end, Bedrock metadata.
    for key in ("message", "response", "delta", "metadata"):
        inner = obj.get(key)
        if isinstance(inner, dict) and isinstance(inner.get("usage"), dict):
            return _usage_object(inner["usage"])
    if "prompt_eval_count" in obj or "eval_count" in obj:  # Ollama's final line
        return Usage(
            prompt_tokens=_int(obj.get("prompt_eval_count")), completion_tokens=_int(obj.get("eval_count"))
        )
    return None


def _merge(old: Usage | None, new: Usage) -> Usage:
    """Streams report usage cumulatively (or input first, output last): each count's maximum wins."""
    if old is None:
        return new
    return Usage(
        prompt_tokens=max(old.prompt_tokens, new.prompt_tokens),
        completion_tokens=max(old.completion_tokens, new.completion_tokens),
        cached_tokens=max(old.cached_tokens, new.cached_tokens),
        cache_write_tokens=max(old.cache_write_tokens, new.cache_write_tokens),
        reasoning_tokens=max(old.reasoning_tokens, new.reasoning_tokens),
    )


def _parse(data: bytes) -> Any:
    try:
        return loads_lenient(data)
    except (orjson.JSONDecodeError, UnicodeDecodeError):
        return None


class UsageReader:
    """Watches a response body go by and reads its usage; never holds a byte back from the caller."""

    __slots__ = ("_decoder", "_json", "_size", "usage")

    def __init__(self, content_type: str | None) -> None:
        kind = (content_type or "").partition(";")[0].strip().lower()
        self.usage: Usage | None = None
        self._json: list[bytes] | None = None
        self._decoder: SSEDecoder | NDJSONDecoder | None = None
        self._size = 0
        if kind == "text/event-stream":
            self._decoder = SSEDecoder()
        elif kind in ("application/x-ndjson", "application/jsonl", "application/json-seq"):
            self._decoder = NDJSONDecoder()
        elif kind == "application/json" or kind.endswith("+json"):
            self._json = []

    def feed(self, chunk: bytes) -> None:
        if self._decoder is not None:
            for event in self._decoder.feed(chunk):
                self._event(event.data)
        elif self._json is not None:
            self._size += len(chunk)
            if self._size > _JSON_USAGE_CAP:
                self._json = None  # too large to keep aside; such bodies are not model replies
            else:
                self._json.append(chunk)

    def _event(self, data: bytes) -> None:
        # Only events that can hold usage are parsed; text deltas pass by at the cost of a find.
        if b"sage" not in data and b"eval_count" not in data:
            return
        found = read_usage(_parse(data))
        if found is not None:
            self.usage = _merge(self.usage, found)

    def finish(self) -> Usage | None:
        if self._decoder is not None:
            for event in self._decoder.close():
                self._event(event.data)
        elif self._json:
            found = read_usage(_parse(b"".join(self._json)))
            if found is not None:
                self.usage = found
            self._json = None
        return self.usage


# ---------------------------------------------------------------------------------------------
# The handler


def _caller_key(raw: list[tuple[bytes, bytes]]) -> str | None:
    """The gateway key from whichever header the caller's SDK uses for its provider."""
    found = {name: value for name, value in raw if name in _KEY_CARRIERS}
    key = extract_key(found.get(b"authorization"), found.get(b"x-api-key"))
    if key is None:
        value = found.get(b"api-key") or found.get(b"x-goog-api-key")
        key = value.strip().decode("latin-1") if value and value.strip() else None
    return key


def _raw_tail(scope: Scope, tail: str) -> str:
    """The path tail as the caller encoded it, after refusing anything that could leave the base URL."""
    segments = tail.split("/")[1:]
    for index, segment in enumerate(segments):
        # An empty segment (`//host`), a dot segment (also percent-encoded twice) or a backslash
        # could make the URL name another host or climb out of the base path; the last segment
        # may be empty (a trailing slash).
        if (not segment and index < len(segments) - 1) or unquote(segment) in (".", ".."):
            raise InvalidRequestError(f"invalid pass-through path {tail!r}: empty or dot segments")
        if "\\" in segment or any(ord(c) < 0x21 or ord(c) == 0x7F for c in segment):
            raise InvalidRequestError(f"invalid pass-through path {tail!r}: backslash or control character")
    if not tail:
        return ""
    raw_path: bytes | None = scope.get("raw_path")
    if raw_path:
        raw = raw_path.decode("latin-1")
        # The tail as sent is the suffix of the raw path that decodes to it: %2F, %3A and the like
        # reach the provider as the caller wrote them. Suffixes start at a "/", so only one can match.
        index = raw.find("/")
        while index != -1:
            if unquote(raw[index:]) == tail:
                return raw[index:]
            index = raw.find("/", index + 1)
    # No raw path from the server: encode what the URL syntax does not allow as is.
    return quote(tail, safe="/:@!$&'()*+,;=~")


def _json_object(body: bytes) -> dict[str, Any] | None:
    """The request body as a JSON object, for the limits estimate; None for anything else."""
    if not body.startswith(b"{"):
        return None
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _response_headers(upstream: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    # A body aiohttp decompressed no longer matches its content-encoding and content-length.
    decoded = "content-encoding" in upstream
    out: list[tuple[bytes, bytes]] = []
    for name, value in upstream.items():
        lower = name.lower()
        if lower in _DROP_RESPONSE or lower.startswith("x-sluicegate-"):
            continue
        if decoded and lower in ("content-encoding", "content-length"):
            continue
        if lower == "x-request-id":
            # Ours names the gateway's request (SPEC §6); the provider's is kept under another name.
            out.append((b"x-sluicegate-upstream-request-id", value.encode("latin-1")))
            continue
        out.append((lower.encode("latin-1"), value.encode("latin-1")))
    return out


async def passthrough(rt: Runtime, ctx: RequestContext, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one `/passthrough/...` request end to end (the app renders errors raised before the start)."""
    raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
    ctx.principal = principal = await rt.authenticator.resolve(_caller_key(raw_headers), scope.get("client"))
    path: str = scope["path"]
    target, model, tail = rt.passthrough.resolve(path)
    if model is not None:
        principal.check_model(model)
    elif principal.allowed_models is not None:
        raise PermissionDeniedError(
            "this key may only use some models: pass through with /passthrough/model/<model name>/..."
        )
    method: str = scope["method"]
    if method not in _METHODS:
        raise MethodNotAllowedError(f"{method} is not allowed on {path}")
    raw_tail = _raw_tail(scope, tail)
    url = target.url(raw_tail, scope.get("query_string") or b"")
    content_length = next((v for k, v in raw_headers if k == b"content-length"), None)
    body = await read_body(receive, rt.max_body_bytes, content_length)
    deployment = target.deployment
    ctx.model = model or deployment.entry.name
    ctx.deployment = deployment
    ctx.attempts = 1
    # Limits and budgets as for any model call (pipeline/accounting.py); the body is estimated
    # when it is a JSON object, as most provider APIs' bodies are.
    await rt.accounting.admit(ctx, ctx.model, _json_object(body))
    request = UpstreamRequest(method, url, target.headers(raw_headers), body)
    await _forward(ctx, request, receive, send)


async def _forward(ctx: RequestContext, request: UpstreamRequest, receive: Receive, send: Send) -> None:
    deployment = ctx.deployment
    assert deployment is not None
    began = perf_counter()
    watcher = DisconnectWatcher(receive)
    upstream = None
    reader: UsageReader | None = None
    outcome = "failed"
    try:
        adapter = deployment.adapter
        if adapter.needs_signing:
            request = await adapter.sign(request, deployment.transport)
        # stream=True: the body is relayed as it arrives, so the deadline bounds each silence.
        upstream = await deployment.transport.open(
            request,
            timeout_s=deployment.timeout_s,
            connect_timeout_s=deployment.connect_timeout_s,
            stream=True,
        )
        ctx.upstream_s = perf_counter() - began
        ctx.status = upstream.status
        reader = UsageReader(upstream.headers.get("content-type"))
        headers = ctx.model_headers()
        headers.extend(_response_headers(upstream.headers))
        ctx.response_started = True
        await send({"type": "http.response.start", "status": upstream.status, "headers": headers})
        async for chunk in upstream.iter_chunks():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            reader.feed(chunk)  # after the send: reading usage never delays the caller
        watcher.active = False
        ctx.usage = reader.finish()  # before the last byte: the call is recorded as it is sent
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        outcome = "ok"
    except asyncio.CancelledError:
        if not watcher.fired:
            raise
        outcome = "client_gone"
        current = asyncio.current_task()
        if current is not None:
            current.uncancel()
    # A failure after the start propagates: the app logs it and the connection is closed without
    # the final chunk, so the caller sees a broken body rather than a silently short one.
    finally:
        watcher.stop()
        if upstream is not None:
            upstream.close()
        if reader is not None:
            ctx.usage = reader.finish()
        _log(ctx, request, upstream.status if upstream is not None else None, outcome, began)


def _log(
    ctx: RequestContext, request: UpstreamRequest, status: int | None, outcome: str, began: float
) -> None:
    deployment = ctx.deployment
    assert deployment is not None
    usage = ctx.usage
    fields: dict[str, Any] = {
        "request_id": ctx.request_id.decode("latin-1"),
        "model": ctx.model,
        "provider": deployment.entry.provider,
        "deployment": deployment.label,
        "method": request.method,
        # The path only: a query string may carry a caller's secrets.
        "upstream_path": urlsplit(request.url).path,
        "status": status,
        "outcome": outcome,
        "duration_ms": round((perf_counter() - began) * 1000.0, 3),
    }
    if usage is not None:
        fields["prompt_tokens"] = usage.prompt_tokens
        fields["completion_tokens"] = usage.completion_tokens
        fields["cached_tokens"] = usage.cached_tokens
    log.info("passthrough", extra=fields)
