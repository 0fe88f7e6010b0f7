"""Every failure reaches the official OpenAI SDK as its matching exception class, with the
provider's message and retry hints, and bad input never takes the server down."""

from __future__ import annotations

import openai
import orjson
import pytest

from tests.conftest import MASTER_KEY, GatewayProcess, raw_request
from tests.fakes import Error, FakeAnthropic, FakeOpenAI, SlowFirstToken

USER = [{"role": "user", "content": "hello"}]


def test_bad_key_is_authentication_error(gateway: GatewayProcess) -> None:
    """A wrong key raises AuthenticationError with code invalid_api_key."""
    with (
        openai.OpenAI(base_url=gateway.v1, api_key="sk-wrong", max_retries=0) as bad,
        pytest.raises(openai.AuthenticationError) as info,
    ):
        bad.chat.completions.create(model="demo", messages=USER)
    assert info.value.code == "invalid_api_key"


def test_missing_key_is_401(gateway: GatewayProcess) -> None:
    """No key at all is a 401 with an OpenAI error body, not a crash."""
    status, _, body = raw_request(gateway.url, "POST", "/v1/chat/completions", b"{}")
    assert status == 401 and orjson.loads(body)["error"]["type"] == "authentication_error"


def test_unknown_model_is_not_found(client: openai.OpenAI) -> None:
    """An unknown model raises NotFoundError with code model_not_found."""
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-9", messages=USER)
    assert info.value.code == "model_not_found"


def test_empty_messages_is_bad_request(client: openai.OpenAI) -> None:
    """An empty `messages` array raises BadRequestError naming the parameter."""
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="demo", messages=[])
    assert info.value.param == "messages"


def test_provider_400_passes_through_with_its_message(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    """A provider's 400 keeps its status, message and param."""
    body = {
        "error": {
            "message": "max_tokens is too large: 999999",
            "type": "invalid_request_error",
            "param": "max_tokens",
            "code": None,
        }
    }
    fake_openai.enqueue(Error(400, body=body))
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-fake", messages=USER, max_tokens=999999)
    assert "max_tokens is too large" in info.value.message
    assert info.value.param == "max_tokens"


@pytest.mark.parametrize("model", ["gpt-fake", "claude-fake"])
def test_provider_429_keeps_retry_after(
    client: openai.OpenAI, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, model: str
) -> None:
    """A provider 429 raises RateLimitError and the `retry-after` header survives the gateway."""
    fake = fake_openai if model == "gpt-fake" else fake_anthropic
    fake.enqueue(Error(429, headers={"retry-after": "7"}))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model=model, messages=USER)
    assert info.value.response.headers["retry-after"] == "7"


@pytest.mark.parametrize(("model", "status"), [("gpt-fake", 500), ("gpt-fake", 503), ("claude-fake", 529)])
def test_provider_5xx_is_502_internal_server_error(
    client: openai.OpenAI, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, model: str, status: int
) -> None:
    """Provider 5xx (and Anthropic's 529 overloaded) become 502 InternalServerError with the message."""
    fake = fake_openai if model == "gpt-fake" else fake_anthropic
    fake.enqueue(Error(status))
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model=model, messages=USER)
    assert info.value.status_code == 502
    assert info.value.message


def test_anthropic_auth_failure_is_reported(client: openai.OpenAI, fake_anthropic: FakeAnthropic) -> None:
    """Anthropic's own 401 (a bad provider key) reaches the caller as AuthenticationError with its text."""
    fake_anthropic.enqueue(Error(401))
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="claude-fake", messages=USER)


def test_mock_injected_failure(client: openai.OpenAI) -> None:
    """The mock's injected 503 arrives as a 502 InternalServerError naming the mock failure."""
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="demo-fail", messages=USER)
    assert "mock failure (HTTP 503)" in info.value.message


def test_connection_refused_is_502(client: openai.OpenAI) -> None:
    """A provider that cannot be reached gives 502 with code upstream_connect_error."""
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="dead", messages=USER)
    assert info.value.status_code == 502 and info.value.code == "upstream_connect_error"


def test_upstream_timeout_is_504(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    """A provider slower than the model's timeout gives 504 with code upstream_timeout."""
    fake_openai.enqueue(SlowFirstToken(3.0))
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="gpt-fake-short", messages=USER)
    assert info.value.status_code == 504 and info.value.code == "upstream_timeout"


def test_mock_hang_times_out(client: openai.OpenAI) -> None:
    """A mock call that never answers is cut by the gateway's timeout (504)."""
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="demo-hang", messages=USER)
    assert info.value.status_code == 504


HEADERS = {"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"}


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b'{"model": "demo", "messages": [{"role": "user", "content": "\xff\xfe"}]}', 400, "UTF-8"),
        (b"[" * 5000 + b"]" * 5000, 400, "not valid JSON"),
        (b'{"model": "demo", "messages": "hi"}', 400, "messages"),
        (b'{"model": "demo"}', 400, "missing required parameter: 'messages'"),
        (b'{"model": "demo", "messages": [{"role": "user", "content": "x"}], "n": "two"}', 400, "'n'"),
        (b'{"model": 42, "messages": []}', 400, "model"),
        (b"", 400, "empty"),
        (b'"just a string"', 400, "JSON object"),
        (
            b'{"model": "demo", "messages": [{"role": "user", "content": "'
            + b"a" * (10 * 1024 * 1024)
            + b'"}]}',
            413,
            "limit",
        ),
    ],
)
def test_bad_input_gets_clear_4xx_and_server_keeps_serving(
    gateway: GatewayProcess, body: bytes, status: int, needle: str
) -> None:
    """Each malformed body gets an OpenAI error with the right status, and the next call still works."""
    got, headers, raw = raw_request(gateway.url, "POST", "/v1/chat/completions", body, HEADERS)
    assert got == status
    error = orjson.loads(raw)["error"]
    assert needle in error["message"] and error["type"] == "invalid_request_error"
    assert headers["x-request-id"]
    ok, _, _ = raw_request(
        gateway.url,
        "POST",
        "/v1/chat/completions",
        b'{"model":"demo","messages":[{"role":"user","content":"x"}]}',
        HEADERS,
    )
    assert ok == 200


def test_unknown_route_and_wrong_method(gateway: GatewayProcess) -> None:
    """Unknown paths are 404 and wrong methods 405, both with OpenAI error bodies."""
    status, _, body = raw_request(gateway.url, "GET", "/v1/nothing-here")
    assert status == 404 and orjson.loads(body)["error"]["code"] == "not_found"
    status, _, body = raw_request(gateway.url, "GET", "/v1/chat/completions", headers=HEADERS)
    assert status == 405 and orjson.loads(body)["error"]["code"] == "method_not_allowed"


def test_health_endpoints_need_no_key(gateway: GatewayProcess) -> None:
    """Liveness and readiness answer without credentials."""
    assert raw_request(gateway.url, "GET", "/health/live")[0] == 200
    status, _, body = raw_request(gateway.url, "GET", "/health/ready")
    assert status == 200 and orjson.loads(body)["status"] == "ready"
