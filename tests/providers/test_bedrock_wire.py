"""Bedrock over real HTTP: the adapter's signed requests against the fake's independent SigV4 check,
the fake's own strictness, and exception frames after HTTP 200 through a running gateway."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import openai
import orjson
import pytest

from sluicegate.config.schema import ModelEntry
from sluicegate.errors import UpstreamStatusError
from sluicegate.providers.bedrock import BedrockAdapter
from sluicegate.types import ChatRequest, UpstreamReply, UpstreamRequest
from sluicegate.upstream.client import HttpTransport
from sluicegate.upstream.sigv4 import Signer, host_header
from tests.fakes import Reply, ToolCalls
from tests.fakes.fake_bedrock import BAD_SIGNATURE, FakeBedrock, StreamException
from tests.fakes.server import FakeProviderServer

from .cases import case_bedrock

KEY, SECRET, TOKEN, REGION = "AKIDWIRE", "wire/secret+key", "wire-session-token", "us-west-2"
ARN = "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0"
HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeBedrock]:
    with FakeBedrock(access_key=KEY, secret_key=SECRET, session_token=TOKEN, region=REGION) as server:
        yield server


@pytest.fixture
async def transport() -> AsyncIterator[HttpTransport]:
    http = HttpTransport()
    try:
        yield http
    finally:
        await http.close()


def adapter_for(fake: FakeBedrock, model: str, **fields: Any) -> BedrockAdapter:
    values: dict[str, Any] = {
        "name": "b",
        "provider": "bedrock",
        "model": model,
        "api_base": fake.base_url,
        "aws_region": REGION,
        "aws_access_key_id": KEY,
        "aws_secret_access_key": SECRET,
        "aws_session_token": TOKEN,
        **fields,
    }
    return BedrockAdapter(ModelEntry(**values))


async def send(transport: HttpTransport, request: UpstreamRequest, *, stream: bool = False) -> UpstreamReply:
    upstream = await transport.open(request, timeout_s=10, connect_timeout_s=5, stream=stream)
    return UpstreamReply(upstream.status, upstream.headers, await upstream.read())


@pytest.mark.parametrize(
    "model",
    ["anthropic.claude-3-haiku-20240307-v1:0", "apac.anthropic.claude-sonnet-4-20250514-v1:0", ARN],
)
async def test_signed_request_reaches_the_fake_with_the_model_id_intact(
    fake: FakeBedrock, transport: HttpTransport, model: str
) -> None:
    """Foundation ids, profile ids and ARNs pass the fake's own SigV4 check and arrive as one label."""
    fake.reset()
    fake.model_ids.clear()
    adapter = adapter_for(fake, model)
    fake.enqueue(Reply("Hi there", prompt_tokens=3, completion_tokens=2))
    request = ChatRequest(body={"messages": HELLO}, model="b")
    reply = await send(transport, await adapter.sign(adapter.build_request(request), transport))
    assert reply.status == 200, reply.body
    assert fake.model_ids == [model]
    response = orjson.loads(adapter.parse_response(request, reply).content)
    assert response["choices"][0]["message"]["content"] == "Hi there"
    assert response["usage"]["total_tokens"] == 5


async def test_signed_stream_decodes_through_the_event_stream_decoder(
    fake: FakeBedrock, transport: HttpTransport
) -> None:
    """A ConverseStream from the fake decodes into the tool call and finish reason it was told to send."""
    fake.reset()
    adapter = adapter_for(fake, ARN)
    fake.enqueue(ToolCalls([("get_weather", {"city": "Paris"})]))
    request = ChatRequest(body={"messages": HELLO, "stream": True}, model="b", stream=True)
    upstream = await transport.open(
        await adapter.sign(adapter.build_request(request), transport),
        timeout_s=10,
        connect_timeout_s=5,
        stream=True,
    )
    assert upstream.status == 200
    assert upstream.headers["content-type"] == "application/vnd.amazon.eventstream"
    decoder, translator = adapter.stream_decoder(), adapter.stream_translator(request)
    frames: list[bytes] = []
    async for chunk in upstream.iter_chunks():
        for event in decoder.feed(chunk):
            frames.extend(translator.feed(event))
    upstream.close()
    frames.extend(translator.finish())
    chunks = [json.loads(f[6:]) for f in frames if f != b"data: [DONE]\n\n"]
    arguments = "".join(
        call["function"].get("arguments", "")
        for c in chunks
        for call in c["choices"][0]["delta"].get("tool_calls", [])
    )
    assert json.loads(arguments) == {"city": "Paris"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert frames[-1] == b"data: [DONE]\n\n"


def _signed(fake: FakeBedrock, body: bytes, *, secret: str = SECRET, token: str | None = TOKEN,
            now: datetime | None = None, model: str = "m") -> UpstreamRequest:  # fmt: skip
    url = f"{fake.base_url}/model/{model}/converse"
    signer = Signer(KEY, secret, REGION, "bedrock", token)
    headers = signer.sign(
        "POST", url, {"content-type": "application/json", "host": host_header(url)}, body, now
    )
    return UpstreamRequest("POST", url, headers, body)


BODY = orjson.dumps({"messages": [{"role": "user", "content": [{"text": "Hi"}]}]})


@pytest.mark.parametrize(
    ("tamper", "name", "message"),
    [
        (lambda f: _signed(f, BODY, secret="wrong"), "InvalidSignatureException", BAD_SIGNATURE),
        (lambda f: _signed(f, BODY, token=None), "UnrecognizedClientException", "security token"),
        (
            lambda f: _signed(f, BODY, now=datetime.now(UTC) - timedelta(minutes=20)),
            "InvalidSignatureException",
            "Signature expired",
        ),
        (
            lambda f: UpstreamRequest("POST", *(lambda r: (r.url, r.headers))(_signed(f, BODY)), BODY + b" "),
            "InvalidSignatureException",
            BAD_SIGNATURE,
        ),
        (
            lambda f: UpstreamRequest(
                "POST", f"{f.base_url}/model/m/converse", {"content-type": "application/json"}, BODY
            ),
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ),
    ],
    ids=["wrong-secret", "missing-token", "stale-date", "body-changed-after-signing", "unsigned"],
)
async def test_fake_refuses_requests_whose_signature_does_not_verify(
    fake: FakeBedrock, transport: HttpTransport, tamper: Any, name: str, message: str
) -> None:
    """Bad signatures get Bedrock's 403 with x-amzn-ErrorType, which the adapter maps keeping the name."""
    reply = await send(transport, tamper(fake))
    assert reply.status == 403
    assert reply.headers["x-amzn-errortype"].startswith(name + ":")
    error = BedrockAdapter(
        ModelEntry(
            name="b",
            provider="bedrock",
            aws_region=REGION,
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
        )
    ).map_error(reply)
    assert isinstance(error, UpstreamStatusError)
    assert (error.http_status, error.code) == (403, name) and message in error.message


TOOL_USE = {"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}
TOOL_RESULT = {"toolResult": {"toolUseId": "t1", "content": [{"text": "ok"}]}}
A = {"text": "a"}
TOOLS = {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}}]}


def _user(*blocks: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def _assistant(*blocks: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"messages": [_user({"text": "Hi"})], "model": "x"}, "extraneous key [model]"),
        ({"messages": [_user({"text": "Hi"})], "system": None}, "[system] must not be null"),
        ({"messages": [_assistant({"text": "Hi"})]}, "must start with a user message"),
        ({"messages": [_user({"text": "a"}), _user({"text": "b"})]}, "must alternate"),
        ({"messages": [_user({"text": " "})]}, "is blank"),
        ({"messages": [_user({"text": "a", "image": {}})]}, "exactly one member"),
        ({"messages": [_user({"type": "text", "text": "a"})]}, "exactly one member"),
        ({"messages": [_user(TOOL_RESULT)], "toolConfig": TOOLS}, "doesn't match any toolUse"),
        ({"messages": [_user(A), _assistant(TOOL_USE), _user({"text": "b"})], "toolConfig": TOOLS},
         "Expected toolResult blocks"),
        ({"messages": [_user(A), _assistant(TOOL_USE), _user(TOOL_RESULT)]}, "toolConfig field must be"),
        ({"messages": [_user(A)], "inferenceConfig": {"temperature": 1.5}}, "less than or equal to 1"),
        ({"messages": [_user(A)], "inferenceConfig": {"max_tokens": 5}}, "extraneous key"),
        ({"messages": [_user({"image": {"format": "bmp", "source": {"bytes": "Qk0="}}})]}, "format must be"),
        ({"messages": [_user(A)], "toolConfig": {**TOOLS, "toolChoice": {"tool": {"name": "g"}}}},
         "is not in toolConfig.tools"),
    ],
)  # fmt: skip
async def test_fake_rejects_what_bedrock_rejects(
    fake: FakeBedrock, transport: HttpTransport, body: dict[str, Any], expected: str
) -> None:
    """Bodies a sloppy translator would send get ValidationException (400) from the fake, as from Bedrock."""
    reply = await send(transport, _signed(fake, orjson.dumps(body)))
    assert reply.status == 400
    assert reply.headers["x-amzn-errortype"].startswith("ValidationException:")
    assert expected in orjson.loads(reply.body)["message"]


async def test_fake_accepts_a_complete_valid_tool_conversation(
    fake: FakeBedrock, transport: HttpTransport
) -> None:
    """A well-formed conversation with a tool round trip, system, cache point and image is accepted."""
    fake.reset()
    body = {
        "messages": [
            _user({"text": "a"}, {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}),
            _assistant({"text": "calling"}, TOOL_USE),
            _user(TOOL_RESULT, {"text": "go on"}),
        ],
        "system": [{"text": "be brief"}, {"cachePoint": {"type": "default"}}],
        "toolConfig": {**TOOLS, "toolChoice": {"auto": {}}},
        "inferenceConfig": {"maxTokens": 10, "temperature": 0.5, "topP": 1, "stopSequences": ["x"]},
    }
    reply = await send(transport, _signed(fake, orjson.dumps(body)))
    assert reply.status == 200, reply.body


# --- through the conformance gateway --------------------------------------------------------------


def _bedrock(fakes: dict[str, FakeProviderServer]) -> FakeProviderServer:
    server = fakes[case_bedrock.CASE.id]
    server.reset()
    return server


def test_exception_frame_after_the_first_token_ends_the_stream_with_an_error_event(
    client: openai.OpenAI, fakes: dict[str, FakeProviderServer]
) -> None:
    """A throttlingException frame mid-stream reaches the SDK as an in-band error after the text so far."""
    _bedrock(fakes).enqueue(
        StreamException("throttlingException", "Too many tokens, slow down.", after_events=3, pause_s=0.2)
    )
    received: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for chunk in client.chat.completions.create(model="conf-bedrock", messages=HELLO, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert received  # the error came after text had been streamed
    assert "Too many tokens, slow down." in str(info.value.message)


def test_exception_frame_as_the_first_event_is_an_http_error(
    client: openai.OpenAI, fakes: dict[str, FakeProviderServer]
) -> None:
    """An exception frame before any token becomes an ordinary HTTP error with the mapped status."""
    _bedrock(fakes).enqueue(StreamException("throttlingException", "Rate exceeded"))
    with pytest.raises(openai.RateLimitError) as info:
        list(client.chat.completions.create(model="conf-bedrock", messages=HELLO, stream=True))
    assert "Rate exceeded" in info.value.message


def test_validation_exception_in_stream_is_a_400(
    client: openai.OpenAI, fakes: dict[str, FakeProviderServer]
) -> None:
    """A validationException frame first in the stream reaches the SDK as BadRequestError."""
    _bedrock(fakes).enqueue(StreamException("validationException", "Input is too long for requested model."))
    with pytest.raises(openai.BadRequestError) as info:
        list(client.chat.completions.create(model="conf-bedrock", messages=HELLO, stream=True))
    assert info.value.body is not None and info.value.code == "ValidationException"


def test_cached_prompt_tokens_reach_the_caller(
    client: openai.OpenAI, fakes: dict[str, FakeProviderServer]
) -> None:
    """Cache reads and writes count in prompt_tokens and cache reads show as cached_tokens."""
    _bedrock(fakes).enqueue(
        Reply("ok", prompt_tokens=10, completion_tokens=1, cached_tokens=100, cache_creation_tokens=5)
    )
    reply = client.chat.completions.create(model="conf-bedrock", messages=HELLO)
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.total_tokens) == (115, 116)
    assert (
        reply.usage.prompt_tokens_details is not None
        and reply.usage.prompt_tokens_details.cached_tokens == 100
    )


def test_each_attempt_is_signed_with_a_fresh_date_and_the_session_token(
    client: openai.OpenAI, fakes: dict[str, FakeProviderServer]
) -> None:
    """Each call carries its own x-amz-date, the session token, and a signature the fake verified."""
    fake = _bedrock(fakes)
    client.chat.completions.create(model="conf-bedrock", messages=HELLO)
    client.chat.completions.create(model="conf-bedrock", messages=HELLO, stream=True).close()
    sent = fake.wait_for_requests(2)
    for recorded in sent:
        assert recorded.headers["x-amz-security-token"] == case_bedrock.SESSION_TOKEN
        stamp = datetime.strptime(recorded.headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60
        assert "/eu-west-3/bedrock/aws4_request" in recorded.headers["authorization"]
    assert [r.path.rsplit("/", 1)[1] for r in sent] == ["converse", "converse-stream"]
