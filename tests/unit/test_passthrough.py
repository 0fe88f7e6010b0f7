"""Pass-through pieces without sockets: URL joining, header and query rules, path checks, usage in
every provider shape, config validation, and per-attempt signing through the gateway in process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from multidict import CIMultiDict

from sluicegate.api.passthrough import (
    PassthroughTarget,
    UsageReader,
    _base_url,
    _raw_tail,
    read_usage,
)
from sluicegate.config.loader import parse_config
from sluicegate.config.schema import ModelEntry
from sluicegate.errors import ConfigError, InvalidRequestError, NotFoundError
from sluicegate.providers.base import Adapter
from sluicegate.providers.openai import OpenAIAdapter
from sluicegate.routing.deployment import Deployment
from sluicegate.server.app import Gateway
from sluicegate.types import UpstreamRequest, Usage
from sluicegate.upstream.sigv4 import Signer


@pytest.fixture(autouse=True)
def _own_working_directory(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process gateways here use the default `./sluicegate.db` (and its spend journal): keep them in
    a temporary directory, never in the checkout."""
    monkeypatch.chdir(tmp_path)


MASTER = "sk-master-unit"


def deployment(entry: ModelEntry, adapter: Adapter | None) -> Deployment:
    return Deployment(
        label="x", entry=entry, adapter=adapter, transport=None, timeout_s=5, connect_timeout_s=5
    )  # type: ignore[arg-type]


def target(adapter_class: type[Adapter] = OpenAIAdapter, **fields: Any) -> PassthroughTarget:
    """A target for one model entry, with the real adapter of its provider."""
    entry = ModelEntry(name="m", **fields)
    built = deployment(entry, adapter_class(entry))
    base = _base_url(built)
    assert base is not None
    return PassthroughTarget(built, base)


# ------------------------------------------------------------------------------- URL joining


@pytest.mark.parametrize(
    ("api_base", "tail", "expected"),
    [
        ("http://h:1/v1", "/v1/models", "http://h:1/v1/models"),
        ("http://h:1/v1", "/models", "http://h:1/v1/models"),
        ("http://h:1/v1/", "/v1", "http://h:1/v1"),
        ("http://h:1/openai/v1", "/openai/v1/models", "http://h:1/openai/v1/models"),
        ("http://h:1/openai/v1", "/v1/models", "http://h:1/openai/v1/models"),
        ("http://h:1/v1beta", "/v1/models", "http://h:1/v1beta/v1/models"),
        ("http://h:1", "/v1/messages", "http://h:1/v1/messages"),
        ("http://h:1/v1", "/v1/files/", "http://h:1/v1/files/"),
        ("http://h:1/v1", "", "http://h:1/v1"),
    ],
)
def test_path_joins_the_base_url_without_repeating_its_tail(api_base: str, tail: str, expected: str) -> None:
    """The caller's documented path is joined to api_base without repeating segments api_base ends with."""
    assert target(provider="openai", api_key="k", api_base=api_base).url(tail, b"") == expected


@pytest.mark.parametrize(
    ("provider", "fields", "expected"),
    [
        ("openai", {}, "https://api.openai.com/v1"),
        ("anthropic", {}, "https://api.anthropic.com"),
        ("gemini", {}, "https://generativelanguage.googleapis.com"),
        ("mistral", {}, "https://api.mistral.ai/v1"),
        ("vertex", {"vertex_location": "europe-west4"}, "https://europe-west4-aiplatform.googleapis.com"),
        ("vertex", {"vertex_location": "global"}, "https://aiplatform.googleapis.com"),
        ("bedrock", {"aws_region": "eu-west-1"}, "https://bedrock-runtime.eu-west-1.amazonaws.com"),
        ("anthropic", {"api_base": "http://h:1/v1/messages"}, "http://h:1/v1"),
        ("azure", {"api_base": "https://r.openai.azure.com/openai/v1"}, "https://r.openai.azure.com"),
        ("azure", {"api_base": "https://r.openai.azure.com/openai/"}, "https://r.openai.azure.com"),
        ("vertex", {"api_base": "https://vertex.example/v1/"}, "https://vertex.example"),
        ("openai", {"api_base": "ftp://h/v1"}, None),
    ],
)
def test_base_url_defaults_to_the_providers_documented_host(
    provider: str, fields: dict[str, Any], expected: str | None
) -> None:
    """Without api_base the provider's own host is used; other forms adapters accept reduce to the root."""
    assert _base_url(deployment(ModelEntry(name="m", provider=provider, **fields), None)) == expected


def test_raw_encoding_of_the_path_is_kept() -> None:
    """Percent-escapes the caller sent (an encoded `/` inside a model id) reach the provider unchanged."""
    path = "/passthrough/openai/v1/models/org%2Fmodel"
    scope = {"raw_path": path.encode(), "path": "/passthrough/openai/v1/models/org/model"}
    tail = _raw_tail(scope, "/v1/models/org/model")
    assert tail == "/v1/models/org%2Fmodel"
    assert target(provider="openai", api_key="k", api_base="http://h:1/v1").url(tail, b"") == (
        "http://h:1/v1/models/org%2Fmodel"
    )


@pytest.mark.parametrize(
    "tail",
    [
        "/v1/../x",
        "/v1/./x",
        "/..",
        "/v1/%2e%2e/x",
        "//evil/x",
        "/v1//x",
        "/http://evil/x",
        "/v1/a\\b",
        "/v1/a\tb",
    ],
)
def test_paths_that_could_leave_the_base_are_refused(tail: str) -> None:
    """Dot segments (even encoded twice), inner empty segments, backslashes and control characters raise."""
    with pytest.raises(InvalidRequestError, match="invalid pass-through path"):
        _raw_tail({}, tail)


def test_query_string_is_forwarded_as_sent_and_gemini_key_is_dropped() -> None:
    """The raw query is kept (a `#` made literal); Gemini's `?key=` credential is never forwarded."""
    openai_target = target(provider="openai", api_key="k", api_base="http://h:1/v1")
    assert (
        openai_target.url("/v1/models", b"limit=2&after=a%20b#x")
        == "http://h:1/v1/models?limit=2&after=a%20b%23x"
    )

    from sluicegate.providers.gemini import GeminiAdapter

    gemini = target(GeminiAdapter, provider="gemini", api_key="AIza")
    url = gemini.url("/v1beta/models", b"key=sk-master&pageSize=5&%6Bey=x")
    assert url == "https://generativelanguage.googleapis.com/v1beta/models?pageSize=5"
    assert gemini.headers([]) == {"x-goog-api-key": "AIza", "accept-encoding": "identity"}


@pytest.mark.parametrize(
    ("version", "path", "query", "expected"),
    [
        ("2024-10-21", "/openai/deployments/d/chat/completions", b"", "?api-version=2024-10-21"),
        (
            "2024-10-21",
            "/openai/deployments/d/chat/completions",
            b"api-version=2025-01-01",
            "?api-version=2025-01-01",
        ),
        ("2024-10-21", "/openai/v1/models", b"", ""),
        ("v1", "/openai/v1/models", b"", ""),
        ("preview", "/openai/v1/responses", b"", "?api-version=preview"),
    ],
)
def test_azure_api_version_is_added_only_where_it_belongs(
    version: str, path: str, query: bytes, expected: str
) -> None:
    """Azure's dated surface gets the configured api-version unless the caller sent one; v1 gets none."""
    from sluicegate.providers.azure import AzureAdapter

    t = target(
        AzureAdapter,
        provider="azure",
        api_base="https://r.openai.azure.com",
        api_version=version,
        api_key="az",
    )
    assert t.url(path, query) == f"https://r.openai.azure.com{path}{expected}"
    assert t.headers([])["api-key"] == "az"


# ------------------------------------------------------------------------------- headers


def test_headers_drop_credentials_hop_by_hop_and_controls() -> None:
    """The caller's keys, cookies, hop-by-hop headers (also those named in Connection) and
    x-sluicegate-* controls are dropped; the deployment's key and configured headers are set."""
    t = target(provider="openai", api_key="sk-up", api_base="http://h:1/v1", headers={"OpenAI-Project": "p1"})
    raw = [
        (b"host", b"gw"),
        (b"authorization", b"Bearer sk-master"),
        (b"x-api-key", b"sk-master"),
        (b"api-key", b"sk-master"),
        (b"x-goog-api-key", b"sk-master"),
        (b"cookie", b"a=b"),
        (b"connection", b"keep-alive, x-private"),
        (b"x-private", b"1"),
        (b"transfer-encoding", b"chunked"),
        (b"content-length", b"3"),
        (b"accept-encoding", b"gzip"),
        (b"x-sluicegate-tags", b"t"),
        (b"x-forwarded-for", b"10.0.0.1"),
        (b"openai-project", b"caller"),
        (b"accept", b"text/event-stream"),
        (b"x-custom", b"a"),
        (b"x-custom", b"b"),
        (b"content-type", b"application/json"),
    ]
    assert t.headers(raw) == {
        "accept": "text/event-stream",
        "x-custom": "a, b",
        "content-type": "application/json",
        "authorization": "Bearer sk-up",
        "openai-project": "p1",
        "accept-encoding": "identity",
    }


def test_anthropic_version_is_a_default_the_caller_may_override() -> None:
    """`anthropic-version` is added when absent and left alone when the caller chose one."""
    from sluicegate.providers.anthropic import AnthropicAdapter

    t = target(AnthropicAdapter, provider="anthropic", api_key="sk-ant")
    assert t.headers([])["anthropic-version"] == "2023-06-01"
    assert t.headers([(b"anthropic-version", b"2099-01-01")])["anthropic-version"] == "2099-01-01"
    assert t.headers([(b"x-api-key", b"sk-master")])["x-api-key"] == "sk-ant"


# ------------------------------------------------------------------------------- routes and config


def config(passthrough: dict[str, str] | None = None) -> dict[str, Any]:
    models = [
        {"name": "a", "provider": "openai", "api_key": "ka", "api_base": "http://h:1/v1"},
        {"name": "b", "provider": "openai", "api_key": "kb", "api_base": "http://h:2/v1"},
        {"name": "org/model", "provider": "openai-compatible", "preset": "groq", "api_key": "kg"},
        {"name": "demo", "provider": "mock"},
    ]
    return {"master_key": MASTER, "models": models, **({"passthrough": passthrough} if passthrough else {})}


def test_names_resolve_to_the_first_deployment_or_the_mapping() -> None:
    """A provider name is its first deployment unless `passthrough:` maps it; presets and models work too."""
    first = Gateway(parse_config(config())).runtime.passthrough
    mapped = Gateway(parse_config(config({"openai": "b"}))).runtime.passthrough
    assert first.resolve("/passthrough/openai/v1/models")[0].deployment.entry.name == "a"
    assert mapped.resolve("/passthrough/openai/v1/models")[0].deployment.entry.name == "b"
    groq, _, tail = first.resolve("/passthrough/groq/openai/v1/models")
    assert groq.url(tail, b"") == "https://api.groq.com/openai/v1/models"
    by_model = first.resolve("/passthrough/model/org/model/v1/models")
    assert (by_model[1], by_model[2]) == ("org/model", "/v1/models")
    with pytest.raises(NotFoundError, match="'mock'"):
        first.resolve("/passthrough/mock/x")


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"nope": "a"}, "passthrough.nope: unknown provider or preset 'nope'"),
        ({"openai": "zzz"}, "passthrough.openai: no model named 'zzz' is configured"),
        ({"anthropic": "a"}, "passthrough.anthropic: model 'a' has no deployment of provider anthropic"),
        ({"mock": "demo"}, "passthrough.mock: unknown provider or preset"),
    ],
)
def test_bad_passthrough_mapping_quotes_the_field(mapping: dict[str, str], message: str) -> None:
    """`passthrough:` errors name the bad key and say what is wrong."""
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_config(config(mapping))


# ------------------------------------------------------------------------------- usage


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (  # OpenAI chat / completions
            {"usage": {"prompt_tokens": 10, "completion_tokens": 2,
                       "prompt_tokens_details": {"cached_tokens": 4}}},
            Usage(10, 2, cached_tokens=4),
        ),
        ({"usage": {"prompt_tokens": 8, "total_tokens": 8}}, Usage(8, 0)),  # embeddings
        (  # DeepSeek cache hits
            {"usage": {"prompt_tokens": 10, "completion_tokens": 1, "prompt_cache_hit_tokens": 6}},
            Usage(10, 1, cached_tokens=6),
        ),
        (  # Anthropic: input excludes cache reads and writes
            {"usage": {"input_tokens": 5, "output_tokens": 7, "cache_read_input_tokens": 3,
                       "cache_creation_input_tokens": 2}},
            Usage(10, 7, cached_tokens=3, cache_write_tokens=2),
        ),
        (  # OpenAI Responses: input includes cached
            {"usage": {"input_tokens": 9, "output_tokens": 4, "total_tokens": 13,
                       "input_tokens_details": {"cached_tokens": 2},
                       "output_tokens_details": {"reasoning_tokens": 1}}},
            Usage(9, 4, cached_tokens=2, reasoning_tokens=1),
        ),
        (  # Gemini / Vertex
            {"usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 30, "thoughtsTokenCount": 8,
                               "cachedContentTokenCount": 5}},
            Usage(12, 38, cached_tokens=5, reasoning_tokens=8),
        ),
        (  # Bedrock Converse
            {"usage": {"inputTokens": 30, "outputTokens": 12, "totalTokens": 42, "cacheReadInputTokens": 4}},
            Usage(34, 12, cached_tokens=4),
        ),
        (  # Cohere v2
            {"usage": {"billed_units": {"input_tokens": 12, "output_tokens": 6},
                       "tokens": {"input_tokens": 20, "output_tokens": 6}, "cached_tokens": 3}},
            Usage(12, 6, cached_tokens=3),  # billed units, not the template-inflated `tokens`
        ),
        ({"done": True, "prompt_eval_count": 26, "eval_count": 290}, Usage(26, 290)),  # Ollama
        (  # Cohere's stream end
            {"type": "message-end", "delta": {"usage": {"tokens": {"input_tokens": 3, "output_tokens": 4}}}},
            Usage(3, 4),
        ),
        ({"object": "list", "data": []}, None),
        ({"usage": None}, None),
        ([1, 2], None),
    ],
)  # fmt: skip
def test_usage_is_read_in_every_provider_shape(body: Any, expected: Usage | None) -> None:
    """Each provider's usage fields are normalised so prompt tokens include cached ones."""
    assert read_usage(body) == expected


def feed_bytewise(reader: UsageReader, payload: bytes) -> Usage | None:
    for i in range(len(payload)):
        reader.feed(payload[i : i + 1])
    return reader.finish()


def test_openai_stream_usage_is_read_across_any_read_boundaries() -> None:
    """The usage chunk of an OpenAI stream is found even when reads split events anywhere."""
    events = [
        {"choices": [{"index": 0, "delta": {"content": "usage"}}], "usage": None},
        {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}},
    ]
    payload = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    assert feed_bytewise(UsageReader("text/event-stream; charset=utf-8"), payload) == Usage(9, 2)


def test_anthropic_stream_usage_combines_message_start_and_delta() -> None:
    """Input counts come from message_start and the output count from the last message_delta."""
    start = {"type": "message_start", "message": {"usage": {"input_tokens": 25, "output_tokens": 1,
                                                            "cache_read_input_tokens": 5}}}  # fmt: skip
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 42}}
    payload = b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\r\n\r\n"  # type: ignore[attr-defined]
        for e in (start, delta)
    )
    assert feed_bytewise(UsageReader("text/event-stream"), payload) == Usage(30, 42, cached_tokens=5)


def test_ndjson_and_json_bodies_are_read_and_other_types_ignored() -> None:
    """Ollama's NDJSON final line and a JSON body give usage; other content types are not inspected."""
    ndjson = b'{"message":{"content":"hi"},"done":false}\n{"done":true,"prompt_eval_count":3,"eval_count":4}'
    assert feed_bytewise(UsageReader("application/x-ndjson"), ndjson) == Usage(3, 4)
    body = orjson.dumps({"usage": {"prompt_tokens": 1, "completion_tokens": 1}})
    reader = UsageReader("application/json")
    reader.feed(body[:5])
    reader.feed(body[5:])
    assert reader.finish() == Usage(1, 1)
    plain = UsageReader("application/octet-stream")
    plain.feed(body)
    assert plain.finish() is None
    broken = UsageReader("application/json")
    broken.feed(b'{"usage": ')
    assert broken.finish() is None


# ------------------------------------------------------------------------------- signing in process


class _Stream:
    def __init__(self, status: int, headers: dict[str, str], chunks: list[bytes]) -> None:
        self.status = status
        self.headers = CIMultiDict(headers)
        self._chunks = chunks
        self.closed = False

    async def read(self) -> bytes:
        return b"".join(self._chunks)

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk

    def close(self) -> None:
        self.closed = True


class RecordingTransport:
    """Answers every request with one canned JSON reply and keeps what it was asked to send."""

    def __init__(self) -> None:
        self.requests: list[UpstreamRequest] = []
        self.stream = _Stream(
            200, {"content-type": "application/json", "x-request-id": "up-1"}, [b'{"ok":', b"1}"]
        )

    async def open(
        self, request: UpstreamRequest, *, timeout_s: float, connect_timeout_s: float, stream: bool
    ) -> _Stream:
        self.requests.append(request)
        return self.stream


async def call(
    gateway: Gateway, method: str, raw_path: bytes, headers: list[tuple[bytes, bytes]], body: bytes = b""
):  # type: ignore[no-untyped-def]
    """One request through the ASGI app in process: (status, headers, body)."""
    from urllib.parse import unquote

    path, _, query = raw_path.partition(b"?")
    scope = {
        "type": "http",
        "method": method,
        "path": unquote(path.decode()),
        "raw_path": path,
        "query_string": query,
        "headers": headers,
    }
    inbox = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if inbox:
            return inbox.pop(0)
        await asyncio.Event().wait()  # the client stays connected
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await gateway(scope, receive, send)
    start = sent[0]
    return start["status"], dict(start["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


async def test_signing_adapters_sign_the_exact_request_sent() -> None:
    """A SigV4 deployment (Bedrock) signs the final pass-through request: URL, forwarded headers and body."""
    gateway = Gateway(
        parse_config(
            {
                "master_key": MASTER,
                "models": [
                    {
                        "name": "claude-bedrock",
                        "provider": "bedrock",
                        "model": "anthropic.claude-3-haiku-20240307-v1:0",
                        "aws_region": "us-east-1",
                        "aws_access_key_id": "AKIDEXAMPLE",
                        "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                    }
                ],
            }
        )
    )
    transport = RecordingTransport()
    gateway.runtime.groups["claude-bedrock"].deployments[0].transport = transport
    body = b'{"messages":[{"role":"user","content":[{"text":"hi"}]}]}'
    status, headers, reply = await call(
        gateway,
        "POST",
        b"/passthrough/bedrock/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
        [
            (b"authorization", f"Bearer {MASTER}".encode()),
            (b"content-type", b"application/json"),
            (b"x-trace", b"t1"),
        ],
        body,
    )
    assert (status, reply) == (200, b'{"ok":1}')
    assert headers[b"x-sluicegate-upstream-request-id"] == b"up-1"
    sent = transport.requests[0]
    assert (
        sent.url
        == "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1:0/converse"
    )
    assert sent.body == body
    assert sent.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "x-trace" in sent.headers["authorization"] and MASTER not in str(sent.headers)
    # Signing the same request again at the same instant gives the same signature: it covers what is sent.
    when = datetime.strptime(sent.headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    unsigned = {k: v for k, v in sent.headers.items() if k not in ("authorization", "x-amz-date")}
    signer = Signer("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "us-east-1", "bedrock")
    again = signer.sign("POST", sent.url, unsigned, body, now=when)
    assert again["authorization"] == sent.headers["authorization"]


async def test_generic_signing_hook_runs_per_request() -> None:
    """Any adapter with `needs_signing` gets the built request through `sign` before it is sent."""

    class TokenAdapter(OpenAIAdapter):
        needs_signing = True

        async def sign(self, request: UpstreamRequest, transport: Any) -> UpstreamRequest:
            return UpstreamRequest(
                request.method,
                request.url,
                {**request.headers, "authorization": "Bearer fresh"},
                request.body,
            )

    gateway = Gateway(parse_config(config()))
    deployment = gateway.runtime.groups["a"].deployments[0]
    deployment.adapter = TokenAdapter(deployment.entry)
    transport = RecordingTransport()
    deployment.transport = transport
    status, _, _ = await call(
        gateway, "GET", b"/passthrough/openai/v1/models?limit=1", [(b"x-api-key", MASTER.encode())]
    )
    assert status == 200
    assert transport.requests[0].headers["authorization"] == "Bearer fresh"
    assert transport.requests[0].url == "http://h:1/v1/models?limit=1"


async def test_methods_outside_the_http_api_set_are_405() -> None:
    """TRACE, OPTIONS and the like are refused with 405 before anything is sent."""
    gateway = Gateway(parse_config(config()))
    transport = RecordingTransport()
    gateway.runtime.groups["a"].deployments[0].transport = transport
    status, _, body = await call(
        gateway, "TRACE", b"/passthrough/openai/v1/models", [(b"x-api-key", MASTER.encode())]
    )
    assert status == 405 and b"TRACE" in body
    assert not transport.requests
