"""`/passthrough/{provider}/...` end to end: a gateway process in front of the fake OpenAI and
Anthropic servers, driven with the official SDKs and with raw HTTP for what no SDK sends."""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import orjson
import pytest

from tests.conftest import MASTER_KEY, GatewayProcess, raw_request, run_gateway
from tests.e2e.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.fakes import CutStream, Error, FakeAnthropic, FakeOpenAI, Reply, SlowFirstToken

USER = [{"role": "user", "content": "hello"}]
VLLM_KEY = "sk-vllm-upstream"
OTHER_KEY = "sk-other-openai-upstream"
BODY_LIMIT = 64 * 1024
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


@pytest.fixture(scope="module")
def gateway(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    # `gpt-other` is the first openai deployment; the `passthrough:` mapping picks `gpt-fake` instead.
    config = f"""
master_key: {MASTER_KEY}
server:
  max_body_bytes: {BODY_LIMIT}
passthrough:
  openai: gpt-fake
models:
  - name: gpt-other
    provider: openai
    api_base: {fake_openai.base_url}
    api_key: {OTHER_KEY}
  - name: gpt-fake
    provider: openai
    model: gpt-4o-mini
    api_base: {fake_openai.base_url}
    api_key: {OPENAI_KEY}
    headers: {{OpenAI-Organization: org-sluicegate}}
  - name: claude-fake
    provider: anthropic
    model: claude-sonnet-4-5
    api_base: {fake_anthropic.base_url}
    api_key: {ANTHROPIC_KEY}
  - name: vllm-fake
    provider: openai-compatible
    preset: vllm
    api_base: {fake_openai.base_url}
    api_key: {VLLM_KEY}
  - name: demo
    provider: mock
"""
    with run_gateway(tmp_path_factory.mktemp("passthrough"), config) as gw:
        yield gw


def passthrough_log(gateway: GatewayProcess, request_id: str) -> dict[str, Any]:
    """The gateway's `passthrough` log line of one request (logs are written off the event loop)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for line in gateway.log().splitlines():
            if line.startswith("{"):
                record = orjson.loads(line)
                if record.get("event") == "passthrough" and record.get("request_id") == request_id:
                    return dict(record)
        time.sleep(0.02)
    raise AssertionError(f"no passthrough log line for {request_id}:\n{gateway.log()}")


def test_models_list_uses_provider_key_not_the_callers(
    gateway: GatewayProcess, fake_openai: FakeOpenAI
) -> None:
    """GET /v1/models reaches the fake with the deployment's key; the caller's gateway key stays behind."""
    status, headers, body = raw_request(gateway.url, "GET", "/passthrough/openai/v1/models", headers=AUTH)
    assert status == 200
    assert [m["id"] for m in orjson.loads(body)["data"]] == list(fake_openai.models)
    seen = fake_openai.requests[-1]
    assert (seen.method, seen.path) == ("GET", "/v1/models")
    assert seen.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert not any(MASTER_KEY in value for value in seen.headers.values())
    assert headers["x-request-id"]
    assert headers["x-sluicegate-deployment"] == "openai/gpt-4o-mini"
    assert headers["x-sluicegate-upstream-request-id"].startswith("req_")


def test_mapping_and_configured_headers_win(gateway: GatewayProcess, fake_openai: FakeOpenAI) -> None:
    """The `passthrough:` mapping picks the deployment, its `headers` replace the caller's, and
    cookies, gateway controls and the gateway key are not forwarded."""
    caller = {
        "x-api-key": MASTER_KEY,
        "OpenAI-Organization": "org-caller",
        "Cookie": "session=abc",
        "x-sluicegate-tags": "a,b",
        "OpenAI-Beta": "assistants=v2",
    }
    status, _, _ = raw_request(gateway.url, "GET", "/passthrough/openai/v1/models", headers=caller)
    assert status == 200
    seen = fake_openai.requests[-1].headers
    assert seen["authorization"] == f"Bearer {OPENAI_KEY}"  # gpt-fake's key, not gpt-other's
    assert seen["openai-organization"] == "org-sluicegate"
    assert seen["openai-beta"] == "assistants=v2"
    assert "cookie" not in seen and "x-sluicegate-tags" not in seen and "x-api-key" not in seen


def test_preset_and_model_names_address_deployments(
    gateway: GatewayProcess, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic
) -> None:
    """A preset name (`vllm`) and `/passthrough/model/{name}` reach the deployments they name."""
    raw_request(gateway.url, "GET", "/passthrough/vllm/v1/models", headers=AUTH)
    assert fake_openai.requests[-1].headers["authorization"] == f"Bearer {VLLM_KEY}"
    status, _, body = raw_request(
        gateway.url, "GET", "/passthrough/model/claude-fake/v1/models", headers=AUTH
    )
    assert status == 200
    assert [m["id"] for m in orjson.loads(body)["data"]] == list(fake_anthropic.models)
    assert fake_anthropic.requests[-1].headers["x-api-key"] == ANTHROPIC_KEY


def test_openai_sdk_chat_through_passthrough_reads_usage(
    gateway: GatewayProcess, fake_openai: FakeOpenAI
) -> None:
    """A non-streamed chat call goes through byte for byte and its usage is read from the JSON reply."""
    fake_openai.enqueue(Reply("hi there", prompt_tokens=12, completion_tokens=3, cached_tokens=4))
    with openai.OpenAI(
        base_url=f"{gateway.url}/passthrough/openai/v1", api_key=MASTER_KEY, max_retries=0
    ) as c:
        raw = c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=USER, temperature=0.5)
    completion = raw.parse()
    assert completion.choices[0].message.content == "hi there"
    # Nothing is translated: the provider sees exactly the caller's body (no gateway model mapping).
    assert fake_openai.requests[-1].json == {"model": "gpt-4o-mini", "messages": USER, "temperature": 0.5}
    record = passthrough_log(gateway, raw.headers["x-request-id"])
    assert (record["prompt_tokens"], record["completion_tokens"], record["cached_tokens"]) == (12, 3, 4)
    assert (record["status"], record["outcome"], record["upstream_path"]) == (
        200,
        "ok",
        "/v1/chat/completions",
    )


def test_openai_sdk_stream_arrives_intact_and_usage_is_read(
    gateway: GatewayProcess, fake_openai: FakeOpenAI
) -> None:
    """SSE chunks reach the SDK unchanged (provider ids and fields kept) and the usage chunk is read."""
    fake_openai.enqueue(Reply("one two three four", prompt_tokens=9, completion_tokens=4))
    with openai.OpenAI(
        base_url=f"{gateway.url}/passthrough/openai/v1", api_key=MASTER_KEY, max_retries=0
    ) as c:
        raw = c.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=USER, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(raw.parse())
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "one two three four"
    assert len({ch.id for ch in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    # The fake's random `obfuscation` padding survives: the events were not re-serialised.
    assert all(getattr(ch, "obfuscation", None) for ch in chunks)
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 9
    record = passthrough_log(gateway, raw.headers["x-request-id"])
    assert (record["prompt_tokens"], record["completion_tokens"]) == (9, 4)


def test_stream_is_relayed_as_it_comes(gateway: GatewayProcess, fake_openai: FakeOpenAI) -> None:
    """The response starts as soon as the provider's headers arrive, before its slow first event."""
    fake_openai.enqueue(SlowFirstToken(1.0, then=Reply("late")))
    host, port = gateway.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": USER, "stream": True})
    began = time.perf_counter()
    conn.request("POST", "/passthrough/openai/v1/chat/completions", body=body, headers=AUTH)
    response = conn.getresponse()
    headers_after = time.perf_counter() - began
    payload = response.read()
    body_after = time.perf_counter() - began
    conn.close()
    assert response.status == 200
    assert headers_after < 0.6 <= 1.0 <= body_after
    assert payload.endswith(b"data: [DONE]\n\n")
    events = [orjson.loads(line[6:]) for line in payload.split(b"\n") if line.startswith(b"data: {")]
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events) == "late"


def test_anthropic_version_is_added_when_the_caller_sent_none(
    gateway: GatewayProcess, fake_anthropic: FakeAnthropic
) -> None:
    """A raw Messages call without `anthropic-version` gets the default and the deployment's key."""
    body = orjson.dumps({"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": USER})
    headers = {"x-api-key": MASTER_KEY, "content-type": "application/json"}
    status, _, reply = raw_request(gateway.url, "POST", "/passthrough/anthropic/v1/messages", body, headers)
    assert status == 200, reply
    assert orjson.loads(reply)["type"] == "message"
    seen = fake_anthropic.requests[-1].headers
    assert seen["anthropic-version"] == "2023-06-01"
    assert seen["x-api-key"] == ANTHROPIC_KEY


def test_callers_anthropic_version_wins(gateway: GatewayProcess, fake_anthropic: FakeAnthropic) -> None:
    """An `anthropic-version` sent by the caller is forwarded as is."""
    headers = {**AUTH, "anthropic-version": "2024-10-22"}
    raw_request(gateway.url, "GET", "/passthrough/anthropic/v1/models", headers=headers)
    assert fake_anthropic.requests[-1].headers["anthropic-version"] == "2024-10-22"


def test_anthropic_sdk_stream_usage_is_read(gateway: GatewayProcess, fake_anthropic: FakeAnthropic) -> None:
    """The Anthropic SDK streams through passthrough; usage comes from message_start and message_delta."""
    fake_anthropic.enqueue(
        Reply(
            "streamed words", prompt_tokens=10, completion_tokens=5, cached_tokens=3, cache_creation_tokens=2
        )
    )
    with anthropic.Anthropic(
        base_url=f"{gateway.url}/passthrough/anthropic", api_key=MASTER_KEY, max_retries=0
    ) as client:
        raw = client.messages.with_raw_response.create(
            model="claude-sonnet-4-5", max_tokens=64, messages=USER, stream=True
        )
        events = list(raw.parse())
        request_id = raw.headers["x-request-id"]
    text = "".join(
        e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"
    )
    assert text == "streamed words"
    record = passthrough_log(gateway, request_id)
    # Anthropic's input_tokens excludes cache reads and writes; the gateway's prompt count includes them.
    assert (record["prompt_tokens"], record["completion_tokens"], record["cached_tokens"]) == (15, 5, 3)


def test_query_string_is_kept(gateway: GatewayProcess, fake_openai: FakeOpenAI) -> None:
    """The query string reaches the provider exactly as the caller encoded it."""
    raw_request(
        gateway.url, "GET", "/passthrough/openai/v1/models?limit=2&after=a%20b&order=desc", headers=AUTH
    )
    assert fake_openai.requests[-1].query == "limit=2&after=a%20b&order=desc"


@pytest.mark.parametrize(
    ("path", "mentions"),
    [
        ("/passthrough/nope/v1/models", "'nope'"),
        ("/passthrough/gemini/v1beta/models", "'gemini'"),  # a provider that is not configured
        ("/passthrough/mock/v1/models", "'mock'"),  # in-process: no API to pass through to
        ("/passthrough/model/gpt-9/v1/models", "'gpt-9'"),
        ("/passthrough/model/demo/v1/models", "'demo'"),
    ],
)
def test_unknown_or_unconfigured_provider_is_404(
    gateway: GatewayProcess, fake_openai: FakeOpenAI, path: str, mentions: str
) -> None:
    """A name with no configured deployment behind it is a 404 naming it, and nothing is sent upstream."""
    status, _, body = raw_request(gateway.url, "GET", path, headers=AUTH)
    assert status == 404
    assert mentions in orjson.loads(body)["error"]["message"]
    assert not fake_openai.requests


@pytest.mark.parametrize("key", [None, "sk-wrong"])
def test_without_the_gateway_key_is_401(
    gateway: GatewayProcess, fake_openai: FakeOpenAI, key: str | None
) -> None:
    """No key or a wrong key is a 401 before anything reaches the provider."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    status, _, body = raw_request(gateway.url, "GET", "/passthrough/openai/v1/models", headers=headers)
    assert status == 401
    assert orjson.loads(body)["error"]["code"] == "invalid_api_key"
    assert not fake_openai.requests


def test_gateway_errors_on_anthropic_routes_are_anthropic_shaped(gateway: GatewayProcess) -> None:
    """The gateway's own errors on /passthrough/anthropic use Anthropic's error body."""
    status, _, body = raw_request(gateway.url, "POST", "/passthrough/anthropic/v1/messages", b"{}")
    assert status == 401
    assert orjson.loads(body)["type"] == "error"


@pytest.mark.parametrize(
    "path",
    [
        "/passthrough/openai/v1/../../admin",
        "/passthrough/openai/v1/%2e%2e/%2e%2e/x",
        "/passthrough/openai/..%2f..%2fx",
        "/passthrough/openai/v1/%252e%252e/x",
        "/passthrough/openai//evil.example/x",
        "/passthrough/openai/http://evil.example/x",
        "/passthrough/openai/v1/models\\..\\x",
    ],
)
def test_traversal_attempts_are_refused(gateway: GatewayProcess, fake_openai: FakeOpenAI, path: str) -> None:
    """Dot segments (however encoded), `//host`, absolute URLs and backslashes are a 400, never sent."""
    status, _, body = raw_request(gateway.url, "GET", path, headers=AUTH)
    assert status == 400, body
    assert "pass-through path" in orjson.loads(body)["error"]["message"]
    assert not fake_openai.requests


@pytest.mark.parametrize(
    ("target", "upstream_path"),
    [
        ("/passthrough/openai/@127.0.0.2:9/x", "/v1/@127.0.0.2:9/x"),
        ("http://evil.example/passthrough/openai/v1/models", "/v1/models"),  # absolute-form request target
    ],
)
def test_odd_paths_stay_on_the_configured_host(
    gateway: GatewayProcess, fake_openai: FakeOpenAI, target: str, upstream_path: str
) -> None:
    """Userinfo-like segments and absolute-form request targets still reach the configured provider."""
    raw_request(gateway.url, "GET", target, headers=AUTH)
    assert [r.path for r in fake_openai.requests] == [upstream_path]


def test_body_over_the_limit_is_413(gateway: GatewayProcess, fake_openai: FakeOpenAI) -> None:
    """A body larger than `server.max_body_bytes` is refused with 413 and not forwarded."""
    body = b"x" * (BODY_LIMIT + 1)
    status, _, _ = raw_request(gateway.url, "POST", "/passthrough/openai/v1/chat/completions", body, AUTH)
    assert status == 413
    assert not fake_openai.requests


@pytest.mark.parametrize("status", [429, 503])
def test_provider_errors_pass_through_verbatim(
    gateway: GatewayProcess, fake_openai: FakeOpenAI, status: int
) -> None:
    """A provider error keeps its status, body and `retry-after`: pass-through does not map errors."""
    error_body = {"error": {"message": f"upstream says {status}", "type": "x", "param": None, "code": "y"}}
    fake_openai.enqueue(Error(status, body=error_body, headers={"retry-after": "7"}))
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": USER})
    got, headers, reply = raw_request(
        gateway.url, "POST", "/passthrough/openai/v1/chat/completions", body, AUTH
    )
    assert got == status
    assert orjson.loads(reply) == error_body
    assert headers["retry-after"] == "7"


def test_cut_mid_stream_reaches_the_client_as_a_broken_body(
    gateway: GatewayProcess, fake_openai: FakeOpenAI
) -> None:
    """When the provider drops the connection mid-stream, the caller's body ends broken, not cleanly."""
    fake_openai.enqueue(CutStream(after_events=2, then=Reply("one two three four five six")))
    host, port = gateway.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": USER, "stream": True})
    conn.request("POST", "/passthrough/openai/v1/chat/completions", body=body, headers=AUTH)
    response = conn.getresponse()
    assert response.status == 200
    with pytest.raises(http.client.IncompleteRead) as info:
        response.read()
    conn.close()
    assert b"data: " in info.value.partial and b"[DONE]" not in info.value.partial


def test_client_disconnect_cancels_the_upstream_call(
    gateway: GatewayProcess, fake_openai: FakeOpenAI
) -> None:
    """When the caller hangs up mid-stream, the gateway closes its upstream connection at once."""
    fake_openai.enqueue(SlowFirstToken(5.0))
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": USER, "stream": True})
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /passthrough/openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {MASTER_KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        fake_openai.wait_for_requests(1)
        time.sleep(0.2)
        closed_at = time.monotonic()
    deadline = time.monotonic() + 3
    while not fake_openai.client_gone_at and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake_openai.client_gone_at, "the gateway kept the upstream call open after its client left"
    assert fake_openai.client_gone_at[0] - closed_at < 0.2
