"""AzureAdapter: URLs of both API surfaces, both kinds of auth, config checks, Azure's stream and errors.

The first tests are pure (no sockets); the last ones drive the shared conformance gateway with the
OpenAI SDK against FakeAzure to check what only a real client shows (error codes, stream shape).
"""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from sluicegate.config.loader import parse_config
from sluicegate.errors import ConfigError, UpstreamStatusError
from sluicegate.providers.azure import DEFAULT_API_VERSION, AzureAdapter
from sluicegate.types import ChatRequest, UpstreamReply
from sluicegate.upstream.sse import SSEDecoder
from tests.fakes import Error, Reply
from tests.fakes.fake_azure import PROMPT_FILTERS, FakeAzure, content_filter_error
from tests.fakes.server import FakeProviderServer

from ._helpers import adapter_factory, feed_stream, sent_body

RESOURCE = "https://contoso.openai.azure.com"
USER = [{"role": "user", "content": "hi"}]


azure = adapter_factory(
    AzureAdapter, name="gpt", provider="azure", model="my-deployment", api_base=RESOURCE, api_key="azure-key"
)


def sent(adapter: AzureAdapter, body: dict[str, Any], *, stream: bool = False) -> dict[str, Any]:
    return sent_body(adapter, ChatRequest(body=body, model="gpt", stream=stream))


def run_stream(adapter: AzureAdapter, raw: bytes, *, include_usage: bool = False) -> tuple[Any, list[bytes]]:
    translator = adapter.stream_translator(
        ChatRequest(body={}, model="gpt", stream=True, include_usage=include_usage)
    )
    return translator, feed_stream(translator, SSEDecoder(), raw, finish=True)


# ------------------------------------------------------------------------------------------ URLs


def test_dated_surface_puts_the_deployment_in_the_path_and_the_version_in_the_query() -> None:
    """A dated api_version gives /openai/deployments/{deployment}/chat/completions?api-version=..."""
    upstream = azure(api_version="2025-04-01-preview").build_request(
        ChatRequest(body={"model": "gpt", "messages": USER}, model="gpt")
    )
    assert upstream.url == (
        f"{RESOURCE}/openai/deployments/my-deployment/chat/completions?api-version=2025-04-01-preview"
    )


def test_missing_api_version_uses_the_documented_default() -> None:
    """Without api_version the URL carries the default GA version."""
    assert azure().url.endswith(f"?api-version={DEFAULT_API_VERSION}")
    assert DEFAULT_API_VERSION == "2024-10-21"


@pytest.mark.parametrize(
    "api_base", [RESOURCE, RESOURCE + "/", RESOURCE + "/openai", RESOURCE + "/openai/v1/"]
)
def test_pasted_endpoint_forms_reduce_to_the_resource(api_base: str) -> None:
    """An api_base with or without /openai or /openai/v1 gives the same URLs."""
    adapter = azure(api_base=api_base, api_version="2024-10-21")
    assert (
        adapter.url == f"{RESOURCE}/openai/deployments/my-deployment/chat/completions?api-version=2024-10-21"
    )


def test_v1_surface_uses_openai_paths_and_the_deployment_as_body_model() -> None:
    """api_version v1 gives /openai/v1/chat/completions with no version and `model` = deployment."""
    adapter = azure(api_version="v1")
    upstream = adapter.build_request(ChatRequest(body={"model": "gpt", "messages": USER}, model="gpt"))
    assert upstream.url == f"{RESOURCE}/openai/v1/chat/completions"
    assert orjson.loads(upstream.body)["model"] == "my-deployment"


def test_preview_surface_opts_into_preview_features() -> None:
    """api_version preview is the v1 surface with api-version=preview."""
    assert azure(api_version="preview").url == f"{RESOURCE}/openai/v1/chat/completions?api-version=preview"


def test_endpoint_serves_embeddings_and_resource_level_paths() -> None:
    """Deployment paths (embeddings) go under the deployment; other paths sit directly under /openai."""
    dated = azure(api_version="2024-10-21")
    assert dated.endpoint("embeddings") == (
        f"{RESOURCE}/openai/deployments/my-deployment/embeddings?api-version=2024-10-21"
    )
    assert dated.endpoint("files") == f"{RESOURCE}/openai/files?api-version=2024-10-21"
    assert azure(api_version="v1").endpoint("embeddings") == f"{RESOURCE}/openai/v1/embeddings"


# ------------------------------------------------------------------------------------------ auth


def test_api_key_goes_in_the_api_key_header() -> None:
    """A key is sent as `api-key`, never as a bearer token."""
    headers = azure().headers
    assert headers["api-key"] == "azure-key"
    assert not any(name.lower() == "authorization" for name in headers)


def test_entra_token_replaces_the_key() -> None:
    """With an Authorization header configured, only the bearer token is sent, even if a key is known."""
    headers = azure(headers={"Authorization": "Bearer entra-token"}).headers
    assert headers["Authorization"] == "Bearer entra-token"
    assert "api-key" not in headers


# ---------------------------------------------------------------------------------------- config


def _config(entry: dict[str, Any]) -> Any:
    return parse_config(
        {"models": [{"name": "m", "provider": "mock"}, {"name": "a", "provider": "azure", **entry}]}
    )


def test_config_needs_a_key_or_an_entra_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither api_key, AZURE_API_KEY nor an Authorization header is a config error on models[i].api_key."""
    monkeypatch.delenv("AZURE_API_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"^models\[1\]\.api_key: .*Entra ID"):
        _config({"api_base": RESOURCE})
    assert _config({"api_base": RESOURCE, "headers": {"authorization": "Bearer t"}}).models[1].api_key is None
    monkeypatch.setenv("AZURE_API_KEY", "from-env")
    assert _config({"api_base": RESOURCE}).models[1].api_key == "from-env"


def test_config_needs_the_resource_endpoint() -> None:
    """Azure has no default endpoint: a missing api_base is a config error naming it."""
    with pytest.raises(ConfigError, match=r"^models\[1\]\.api_base: required for provider azure"):
        _config({"api_key": "k"})


@pytest.mark.parametrize("version", ["2024-10-21", "2025-04-01-preview", "v1", "preview"])
def test_config_accepts_azure_api_versions(version: str) -> None:
    """Dated versions (GA or preview) and the v1 surface names are valid api_version values."""
    assert (
        _config({"api_base": RESOURCE, "api_key": "k", "api_version": version}).models[1].api_version
        == version
    )


@pytest.mark.parametrize("version", ["2024-10", "latest", "v2"])
def test_config_rejects_other_api_versions(version: str) -> None:
    """Anything else is a config error quoting models[i].api_version."""
    with pytest.raises(ConfigError, match=r"^models\[1\]\.api_version: "):
        _config({"api_base": RESOURCE, "api_key": "k", "api_version": version})


# ------------------------------------------------------------------------------- stream options


def test_streams_ask_for_usage_on_versions_that_have_it() -> None:
    """From 2024-09-01 (and on v1) a stream asks Azure for usage so the call can be priced."""
    for version in ("2024-10-21", "2024-09-01-preview", "v1"):
        body = sent(
            azure(api_version=version), {"model": "gpt", "messages": USER, "stream": True}, stream=True
        )
        assert body["stream_options"] == {"include_usage": True}


def test_older_versions_never_get_stream_options() -> None:
    """Before 2024-09-01 Azure rejects stream_options, so neither ours nor the caller's is sent."""
    body = {"model": "gpt", "messages": USER, "stream": True, "stream_options": {"include_usage": True}}
    out = sent(azure(api_version="2024-06-01"), body, stream=True)
    assert "stream_options" not in out
    assert body["stream_options"] == {"include_usage": True}  # the caller's body is not mutated


# ------------------------------------------------------------------------------------- streams

FILTER_CHUNK = (
    b'data: {"choices":[],"created":0,"id":"","model":"","object":"",'
    b'"prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false}}}]}\n\n'
)
ROLE = (
    b'data: {"id":"c1","object":"chat.completion.chunk","created":5,"model":"gpt-4o","choices":'
    b'[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null,"content_filter_results":{}}]}\n\n'
)
TEXT = (
    b'data: {"id":"c1","object":"chat.completion.chunk","created":5,"model":"gpt-4o","choices":'
    b'[{"index":0,"delta":{"content":"Hi"},"finish_reason":null,'
    b'"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}]}\n\n'
)
USAGE = (
    b'data: {"id":"c1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}\n\n'
)
DONE = b"data: [DONE]\n\n"


def test_prompt_filter_chunk_is_folded_into_the_first_real_chunk() -> None:
    """The choice-less first chunk is not sent; its filter results ride on the first chunk with choices."""
    _, frames = run_stream(azure(), FILTER_CHUNK + ROLE + TEXT + DONE)
    assert len(frames) == 3 and frames[-1] == DONE
    first = orjson.loads(frames[0][len(b"data: ") : -2])
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert first["prompt_filter_results"][0]["content_filter_results"] == {"hate": {"filtered": False}}
    assert frames[1] == TEXT  # later chunks, content_filter_results included, go out byte for byte


def test_stream_usage_is_read_and_shown_only_when_asked() -> None:
    """Azure's usage chunk is billed either way and reaches the caller only with include_usage."""
    translator, frames = run_stream(azure(), FILTER_CHUNK + ROLE + USAGE + DONE)
    assert USAGE not in frames and translator.usage.prompt_tokens == 3
    _, frames = run_stream(azure(), FILTER_CHUNK + ROLE + USAGE + DONE, include_usage=True)
    assert frames[-2:] == [USAGE, DONE]


def test_content_filter_finish_reason_passes_through() -> None:
    """Output stopped by the filter keeps finish_reason content_filter and its annotations."""
    reply = {
        "id": "c",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "partial"},
                "finish_reason": "content_filter",
                "content_filter_results": {"violence": {"filtered": True, "severity": "high"}},
            }
        ],
        "prompt_filter_results": PROMPT_FILTERS,
        "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
    }
    raw = orjson.dumps(reply)
    response = azure().parse_response(ChatRequest(body={}, model="gpt"), UpstreamReply(200, {}, raw))
    assert response.finish_reason == "content_filter" and response.content == raw


# -------------------------------------------------------------------------------------- errors


def test_blocked_prompt_is_a_400_with_code_content_filter() -> None:
    """Azure's content-filter 400 keeps its status, message, param and code."""
    body = content_filter_error().body
    error = azure().map_error(UpstreamReply(400, {}, orjson.dumps(body)))
    assert isinstance(error, UpstreamStatusError)
    assert (error.http_status, error.code, error.param) == (400, "content_filter", "prompt")
    assert error.message.startswith("The response was filtered")


def test_rate_limit_keeps_both_retry_headers() -> None:
    """An Azure 429 passes on retry-after and retry-after-ms."""
    body = b'{"error":{"code":"429","message":"Requests ... Please retry after 7 seconds."}}'
    headers = {"Retry-After": "7", "retry-after-ms": "7000", "x-ms-region": "Sweden Central"}
    error = azure().map_error(UpstreamReply(429, headers, body))
    assert error.http_status == 429 and error.headers == {"retry-after": "7", "retry-after-ms": "7000"}
    assert error.message.startswith("Requests")


def test_deployment_not_found_keeps_azures_code() -> None:
    """A missing deployment is a 404 whose code is Azure's own DeploymentNotFound."""
    body = b'{"error":{"code":"DeploymentNotFound","message":"The API deployment does not exist."}}'
    error = azure().map_error(UpstreamReply(404, {}, body))
    assert (error.http_status, error.code) == (404, "DeploymentNotFound")


# ------------------------------------------------------------------ through the gateway and SDK


def test_sdk_sees_content_filter_code(client: openai.OpenAI, fakes: dict[str, FakeProviderServer]) -> None:
    """A prompt blocked by Azure reaches the SDK as BadRequestError with code content_filter."""
    fake = fakes["azure"]
    fake.reset()
    fake.enqueue(content_filter_error())
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="conf-azure", messages=USER)
    assert caught.value.code == "content_filter" and caught.value.param == "prompt"


def test_sdk_stream_has_no_choiceless_chunk_but_keeps_filter_results(
    client: openai.OpenAI, fakes: dict[str, FakeProviderServer]
) -> None:
    """Every streamed chunk the SDK sees has choices; the prompt's filter results arrive on the first."""
    fake = fakes["azure"]
    fake.reset()
    fake.enqueue(Reply("Hello there"))
    chunks = list(client.chat.completions.create(model="conf-azure", messages=USER, stream=True))
    assert all(chunk.choices for chunk in chunks)
    assert (chunks[0].model_extra or {}).get("prompt_filter_results") == PROMPT_FILTERS
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello there"


def test_dated_and_v1_requests_reach_azure_as_configured(
    client: openai.OpenAI, fakes: dict[str, FakeProviderServer]
) -> None:
    """The dated case sends api-key to the deployment URL; the v1 case sends only the Entra token."""
    dated, v1 = fakes["azure"], fakes["azure-v1"]
    dated.reset()
    v1.reset()
    client.chat.completions.create(model="conf-azure", messages=USER)
    client.chat.completions.create(model="conf-azure-v1", messages=USER)
    (sent_dated,) = dated.requests
    (sent_v1,) = v1.requests
    assert sent_dated.path == "/openai/deployments/gpt-4o-mini/chat/completions"
    assert (
        sent_dated.headers["api-key"] == "azure-conformance-key" and "authorization" not in sent_dated.headers
    )
    assert sent_v1.path == "/openai/v1/chat/completions" and sent_v1.json["model"] == "gpt-4o-mini"
    assert sent_v1.headers["authorization"].startswith("Bearer ") and "api-key" not in sent_v1.headers


def test_azure_5xx_is_a_502_with_azures_message(
    client: openai.OpenAI, fakes: dict[str, FakeProviderServer]
) -> None:
    """An Azure 503 reaches the caller as a 502 carrying Azure's own message."""
    fake = fakes["azure"]
    fake.reset()
    fake.enqueue(Error(503))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="conf-azure", messages=USER)
    assert caught.value.status_code == 502
    assert "temporarily unable" in caught.value.message


@pytest.mark.parametrize(
    ("model", "fake_id", "path", "query"),
    [
        ("conf-azure", "azure", "/openai/deployments/gpt-4o-mini/embeddings", "api-version=2024-10-21"),
        ("conf-azure-v1", "azure-v1", "/openai/v1/embeddings", ""),
    ],
)
def test_embeddings_use_the_deployments_surface(
    client: openai.OpenAI,
    fakes: dict[str, FakeProviderServer],
    model: str,
    fake_id: str,
    path: str,
    query: str,
) -> None:
    """Embeddings go to the same surface as chat and come back as the SDK expects."""
    fake = fakes[fake_id]
    fake.reset()
    result = client.embeddings.create(model=model, input=["one", "two"], dimensions=4)
    (sent_request,) = fake.requests
    assert (sent_request.path, sent_request.query) == (path, query)
    assert [item.embedding for item in result.data] == [
        FakeAzure.embedding("one", 4),
        FakeAzure.embedding("two", 4),
    ]


def test_legacy_completions_reach_the_deployment(
    client: openai.OpenAI, fakes: dict[str, FakeProviderServer]
) -> None:
    """/v1/completions goes to the deployment's own completions URL with the api-version."""
    fake = fakes["azure"]
    fake.reset()
    fake.enqueue(Reply("a fine day"))
    result = client.completions.create(model="conf-azure", prompt="Say something", max_tokens=5)
    assert result.choices[0].text == "a fine day"
    assert (fake.requests[-1].path, fake.requests[-1].query) == (
        "/openai/deployments/gpt-4o-mini/completions",
        "api-version=2024-10-21",
    )
