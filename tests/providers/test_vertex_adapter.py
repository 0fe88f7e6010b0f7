"""VertexAdapter: config checks, URLs, the Gemini and Claude envelopes, OAuth signing and error dialects."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from sluicegate.config.loader import parse_config
from sluicegate.config.schema import ModelEntry
from sluicegate.errors import ConfigError, InvalidRequestError, UpstreamError, UpstreamStatusError
from sluicegate.providers.gemini import GeminiAdapter
from sluicegate.providers.vertex import VertexAdapter
from sluicegate.types import ChatRequest, EmbeddingsRequest, UpstreamReply
from sluicegate.upstream.client import HttpTransport
from tests.fakes import Reply
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.google_oauth import service_account_info

HELLO = [{"role": "user", "content": "Hello"}]
TOKEN_URI = "https://oauth2.example.test/token"


def credentials(project_id: str | None = "sa-project") -> str:
    return json.dumps(service_account_info(TOKEN_URI, project_id=project_id))


def make_adapter(**entry: Any) -> VertexAdapter:
    fields: dict[str, Any] = {
        "name": "vx",
        "provider": "vertex",
        "model": "gemini-2.5-flash",
        "vertex_project": "my-project",
        "vertex_credentials": credentials(),
    }
    fields.update(entry)
    return VertexAdapter(ModelEntry(**fields))


def chat(body: dict[str, Any]) -> ChatRequest:
    return ChatRequest(body=body, model="vx", stream=bool(body.get("stream")))


def config_error(monkeypatch: pytest.MonkeyPatch, **entry: Any) -> str:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    model = {"name": "first", "provider": "mock"}
    vertex = {"name": "vx", "provider": "vertex", "model": "gemini-2.5-flash", **entry}
    with pytest.raises(ConfigError) as info:
        parse_config({"models": [model, vertex]})
    return info.value.message


# --- configuration ----------------------------------------------------------------------------


def test_missing_credentials_is_a_config_error_quoting_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without vertex_credentials (or GOOGLE_APPLICATION_CREDENTIALS) the config names the field."""
    message = config_error(monkeypatch, vertex_project="p")
    assert message.startswith("models[1].vertex_credentials: required for provider vertex")


def test_missing_project_is_a_config_error_when_the_credentials_name_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without vertex_project and no project_id in the credentials, the config names vertex_project."""
    message = config_error(monkeypatch, vertex_credentials=credentials(project_id=None))
    assert message.startswith("models[1].vertex_project: required for provider vertex")


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            {"vertex_credentials": "{oops", "vertex_project": "p"},
            "models[1].vertex_credentials: not valid JSON",
        ),
        (
            {"vertex_credentials": json.dumps({"type": "service_account"}), "vertex_project": "p"},
            "models[1].vertex_credentials: a service_account JSON needs a non-empty string 'client_email'",
        ),
        (
            {"vertex_location": "US Central", "vertex_credentials": credentials()},
            "models[1].vertex_location:",
        ),
        ({"vertex_project": "bad/project", "vertex_credentials": credentials()}, "models[1].vertex_project:"),
    ],
)
def test_bad_vertex_fields_are_config_errors_quoting_the_field(
    monkeypatch: pytest.MonkeyPatch, entry: dict[str, Any], expected: str
) -> None:
    """Unusable credentials, locations and project ids are refused at load with the field's path."""
    assert config_error(monkeypatch, **entry).startswith(expected)


def test_project_comes_from_the_credentials_when_not_given() -> None:
    """vertex_project defaults to the service account's project_id."""
    adapter = make_adapter(vertex_project=None)
    assert adapter.project == "sa-project"
    assert "/projects/sa-project/" in adapter.url


def test_google_application_credentials_is_the_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without vertex_credentials the file named by GOOGLE_APPLICATION_CREDENTIALS is used."""
    path = tmp_path / "sa.json"
    path.write_text(credentials("from-env"))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    config = parse_config({"models": [{"name": "vx", "provider": "vertex", "model": "gemini-2.5-flash"}]})
    assert VertexAdapter(config.models[0]).project == "from-env"


# --- URLs and bodies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "url"),
    [
        (
            {},
            "https://us-central1-aiplatform.googleapis.com/v1/projects/my-project/locations/us-central1"
            "/publishers/google/models/gemini-2.5-flash:generateContent",
        ),
        (
            {"vertex_location": "global"},
            "https://aiplatform.googleapis.com/v1/projects/my-project/locations/global"
            "/publishers/google/models/gemini-2.5-flash:generateContent",
        ),
        (
            {"vertex_location": "europe-west4", "api_base": "http://127.0.0.1:9/v1/"},
            "http://127.0.0.1:9/v1/projects/my-project/locations/europe-west4"
            "/publishers/google/models/gemini-2.5-flash:generateContent",
        ),
        (
            {"model": "claude-sonnet-4-5@20250929", "vertex_location": "us-east5"},
            "https://us-east5-aiplatform.googleapis.com/v1/projects/my-project/locations/us-east5"
            "/publishers/anthropic/models/claude-sonnet-4-5@20250929:rawPredict",
        ),
    ],
)
def test_urls_follow_location_publisher_and_api_base(entry: dict[str, Any], url: str) -> None:
    """Regional and global hosts, api_base overrides, and the google/anthropic publisher paths."""
    assert make_adapter(**entry).url == url


def test_gemini_models_send_the_gemini_body_and_stream_with_alt_sse() -> None:
    """A Gemini model's body is exactly what the gemini adapter sends; streams use ?alt=sse."""
    body = {"messages": HELLO, "temperature": 0.2, "tools": [{"type": "function", "function": {"name": "f"}}]}
    gemini = GeminiAdapter(ModelEntry(name="g", provider="gemini", model="gemini-2.5-flash", api_key="k"))
    upstream = make_adapter().build_request(chat(body))
    assert orjson.loads(upstream.body) == orjson.loads(gemini.build_request(chat(body)).body)
    assert "authorization" not in upstream.headers and "x-goog-api-key" not in upstream.headers
    stream = make_adapter().build_request(chat({**body, "stream": True}))
    assert stream.url.endswith("/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse")


def test_claude_models_send_the_messages_body_in_the_vertex_envelope() -> None:
    """A Claude body has anthropic_version vertex-2023-10-16, no model, and stream on :streamRawPredict."""
    adapter = make_adapter(model="claude-sonnet-4-5@20250929")
    body = orjson.loads(adapter.build_request(chat({"messages": HELLO, "max_tokens": 64})).body)
    assert body == {"anthropic_version": "vertex-2023-10-16", "max_tokens": 64, "messages": HELLO}
    stream = adapter.build_request(chat({"messages": HELLO, "stream": True}))
    assert stream.url.endswith(":streamRawPredict")
    assert orjson.loads(stream.body)["stream"] is True


def test_claude_unsupported_parameter_names_the_vertex_provider() -> None:
    """A parameter Claude cannot honour gets a 400 that names provider vertex, not anthropic."""
    with pytest.raises(InvalidRequestError) as info:
        make_adapter(model="claude-haiku-4-5").build_request(chat({"messages": HELLO, "seed": 1}))
    assert "(provider vertex)" in info.value.message


# --- errors -----------------------------------------------------------------------------------


def test_claude_errors_are_read_in_both_dialects() -> None:
    """Claude on Vertex: Google's envelope for platform errors, Anthropic's for model errors."""
    adapter = make_adapter(model="claude-sonnet-4-5")
    google = {"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED"}}
    quota = adapter.map_error(UpstreamReply(429, {"retry-after": "3"}, orjson.dumps(google)))
    assert (quota.http_status, quota.code, quota.message, quota.headers) == (
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded",
        {"retry-after": "3"},
    )
    anthropic = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    overloaded = adapter.map_error(UpstreamReply(529, {}, orjson.dumps(anthropic)))
    assert isinstance(overloaded, UpstreamStatusError)
    assert (overloaded.http_status, overloaded.code, overloaded.message) == (
        502,
        "overloaded_error",
        "Overloaded",
    )


# --- embeddings -------------------------------------------------------------------------------


def test_embeddings_use_predict_and_report_the_token_counts() -> None:
    """Google embedding models on Vertex use :predict; usage is the sum of the returned token counts."""
    adapter = make_adapter(model="text-embedding-005")
    request = EmbeddingsRequest(body={}, model="vx", inputs=["a b", "c"], dimensions=64)
    upstream = adapter.build_embeddings_request(request)
    assert upstream.url.endswith("/publishers/google/models/text-embedding-005:predict")
    assert orjson.loads(upstream.body) == {
        "instances": [{"content": "a b"}, {"content": "c"}],
        "parameters": {"outputDimensionality": 64},
    }
    predictions = [
        {"embeddings": {"values": [0.1], "statistics": {"token_count": 2, "truncated": False}}},
        {"embeddings": {"values": [0.2], "statistics": {"token_count": 1, "truncated": False}}},
    ]
    result = adapter.parse_embeddings_response(
        request, UpstreamReply(200, {}, orjson.dumps({"predictions": predictions}))
    )
    assert result.vectors == [[0.1], [0.2]]
    assert result.usage is not None and result.usage.prompt_tokens == 3


def test_claude_deployments_refuse_embeddings() -> None:
    """A Claude model on Vertex has no embeddings: a 400 naming the model."""
    request = EmbeddingsRequest(body={}, model="vx", inputs=["a"])
    with pytest.raises(InvalidRequestError):
        make_adapter(model="claude-sonnet-4-5").build_embeddings_request(request)


# --- signing against the fake token endpoint --------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeGemini]:
    with FakeGemini(project="sign-project") as server:
        yield server


@pytest.fixture
async def transport() -> AsyncIterator[HttpTransport]:
    http = HttpTransport()
    yield http
    await http.close()


def fake_adapter(fake: FakeGemini, **entry: Any) -> VertexAdapter:
    return make_adapter(
        vertex_project=fake.project, vertex_credentials=fake.credentials_json, api_base=fake.base_url, **entry
    )


async def test_signed_request_is_accepted_by_vertex_with_one_token_for_many_calls(
    fake: FakeGemini, transport: HttpTransport
) -> None:
    """sign() gets a token with a JWT the endpoint verifies, and reuses it: 3 calls, 1 token request."""
    fake.reset()
    fake.enqueue(Reply("one"), Reply("two"), Reply("three"))
    adapter = fake_adapter(fake)
    texts = []
    for _ in range(3):
        unsigned = adapter.build_request(chat({"messages": HELLO}))
        signed = await adapter.sign(unsigned, transport)
        assert "authorization" not in unsigned.headers
        assert signed.headers["authorization"].startswith("Bearer ya29.fake-")
        stream = await transport.open(signed, timeout_s=10, connect_timeout_s=5, stream=False)
        body = await stream.read()
        assert stream.status == 200, body
        reply = adapter.parse_response(chat({"messages": HELLO}), UpstreamReply(200, stream.headers, body))
        texts.append(orjson.loads(reply.content)["choices"][0]["message"]["content"])
    assert texts == ["one", "two", "three"]
    assert [r.path for r in fake.requests].count("/token") == 1
    assert fake.oauth.assertions[0]["aud"] == fake.token_uri


async def test_unsigned_or_revoked_token_gets_googles_401(fake: FakeGemini, transport: HttpTransport) -> None:
    """Vertex paths refuse a request without a valid bearer: 401 UNAUTHENTICATED, mapped as such."""
    fake.reset()
    adapter = fake_adapter(fake)
    unsigned = adapter.build_request(chat({"messages": HELLO}))
    stream = await transport.open(unsigned, timeout_s=10, connect_timeout_s=5, stream=False)
    error = adapter.map_error(UpstreamReply(stream.status, stream.headers, await stream.read()))
    assert (error.http_status, error.code) == (401, "UNAUTHENTICATED")


async def test_token_endpoint_refusal_surfaces_as_upstream_error(
    fake: FakeGemini, transport: HttpTransport
) -> None:
    """When the token endpoint refuses the grant, sign() raises an UpstreamError quoting Google's reason."""
    fake.reset()
    fake.oauth.failures.append(
        (400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
    )
    adapter = fake_adapter(fake)
    with pytest.raises(UpstreamError, match=r"invalid_grant: Invalid JWT Signature\."):
        await adapter.sign(adapter.build_request(chat({"messages": HELLO})), transport)
