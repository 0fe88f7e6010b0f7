"""The fake provider servers are wire-exact: the official SDKs, talking to them directly, accept them.

Every test drives ``FakeOpenAI`` or ``FakeAnthropic`` over real HTTP with the ``openai`` or
``anthropic`` client (or with raw HTTP where the SDK would hide the wire), so the e2e suite can
trust that a gateway failing against a fake would fail against the real provider.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from tests.fakes import (
    CutStream,
    Error,
    FakeAnthropic,
    FakeOpenAI,
    Reply,
    SlowFirstToken,
    ToolCalls,
)

MODEL = "gpt-4o-mini"
CLAUDE = "claude-fake-4"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CLAUDE_WEATHER_TOOL = {
    "name": "get_weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def openai_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(scope="module")
def anthropic_server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def fake_openai(openai_server: FakeOpenAI) -> FakeOpenAI:
    openai_server.reset()
    return openai_server


@pytest.fixture
def fake_anthropic(anthropic_server: FakeAnthropic) -> FakeAnthropic:
    anthropic_server.reset()
    return anthropic_server


@pytest.fixture
def oai(fake_openai: FakeOpenAI) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key="sk-test", base_url=fake_openai.base_url, max_retries=0, timeout=5) as client:
        yield client


@pytest.fixture
def claude(fake_anthropic: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        api_key="sk-ant-test", base_url=fake_anthropic.base_url, max_retries=0, timeout=5
    ) as client:
        yield client


def post_raw(url: str, body: Any, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """POST without an SDK, for what the SDKs would never send or would hide (status, headers, body)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


# ------------------------------------------------------------------------------------ OpenAI


def test_openai_non_stream_reply_has_the_full_response_shape(
    oai: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    """A default non-streamed reply echoes the last user text parts, with usage details and a fingerprint."""
    completion = oai.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "hello"}, {"type": "text", "text": "there"}],
            },
        ],
    )
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == MODEL
    assert completion.system_fingerprint and completion.system_fingerprint.startswith("fp_")
    choice = completion.choices[0]
    assert choice.message.content == "fake: hello there"
    assert choice.finish_reason == "stop"
    assert choice.message.tool_calls is None
    assert completion.usage is not None
    assert (
        completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    assert (
        completion.usage.prompt_tokens_details and completion.usage.prompt_tokens_details.cached_tokens == 0
    )
    assert completion.usage.completion_tokens_details is not None
    recorded = fake_openai.requests[-1]
    assert (recorded.method, recorded.path) == ("POST", "/v1/chat/completions")
    assert recorded.headers["authorization"] == "Bearer sk-test"
    assert recorded.json["model"] == MODEL and json.loads(recorded.raw) == recorded.json


def test_openai_reply_overrides_text_finish_reason_and_usage(
    oai: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    """Reply's explicit text, finish_reason and token counts are returned verbatim."""
    fake_openai.enqueue(
        Reply("cut short", finish_reason="length", prompt_tokens=100, completion_tokens=7, cached_tokens=40)
    )
    completion = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert completion.choices[0].message.content == "cut short"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (100, 7)
    assert (
        completion.usage.prompt_tokens_details and completion.usage.prompt_tokens_details.cached_tokens == 40
    )


def test_openai_stream_with_include_usage_ends_with_a_usage_chunk(oai: openai.OpenAI) -> None:
    """A stream opens with the role, splits the text, sets finish_reason, then sends a usage-only chunk."""
    with oai.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "tell me a story"}],
        stream=True,
        stream_options={"include_usage": True},
    ) as stream:
        chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[0].choices[0].delta.content == ""
    pieces = [c.choices[0].delta.content for c in chunks[1:] if c.choices and c.choices[0].delta.content]
    assert len(pieces) >= 2 and "".join(pieces) == "fake: tell me a story"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5
    assert len({c.id for c in chunks}) == 1


def test_openai_stream_without_include_usage_has_no_usage_chunk(
    oai: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    """Without stream_options.include_usage every chunk has a choice and the raw stream ends in [DONE]."""
    with oai.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
    ) as stream:
        chunks = list(stream)
    assert all(chunk.choices for chunk in chunks)
    status, headers, raw = post_raw(
        f"{fake_openai.base_url}/chat/completions",
        {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True},
        {"authorization": "Bearer sk-test"},
    )
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    assert headers["x-request-id"] and headers["openai-processing-ms"]
    events = raw.decode().split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    assert all(event.startswith("data: {") for event in events[:-2])
    assert all('"usage"' not in event for event in events)


def test_openai_streamed_tool_calls_reassemble_by_index(oai: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    """Streamed tool calls arrive as an id/name header plus at least two argument fragments per index."""
    calls = [("get_weather", {"city": "Paris"}), ("get_time", {"zone": "Europe/Paris", "format": "24h"})]
    fake_openai.enqueue(ToolCalls(calls))
    assembled: dict[int, dict[str, Any]] = {}
    fragments: dict[int, int] = {}
    finish_reasons = []
    with oai.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER_TOOL], stream=True
    ) as stream:
        for chunk in stream:
            choice = chunk.choices[0]
            finish_reasons.append(choice.finish_reason)
            for delta in choice.delta.tool_calls or []:
                entry = assembled.setdefault(delta.index, {"id": None, "name": None, "arguments": ""})
                assert delta.function is not None
                if delta.id:
                    assert entry["id"] is None and delta.type == "function" and delta.function.arguments == ""
                    entry["id"], entry["name"] = delta.id, delta.function.name
                else:
                    fragments[delta.index] = fragments.get(delta.index, 0) + 1
                entry["arguments"] += delta.function.arguments or ""
    assert [(assembled[i]["name"], json.loads(assembled[i]["arguments"])) for i in sorted(assembled)] == calls
    assert all(entry["id"].startswith("call_") for entry in assembled.values())
    assert min(fragments.values()) >= 2
    assert finish_reasons[-1] == "tool_calls"


def test_openai_non_stream_tool_call_arguments_are_json_strings(
    oai: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    """Non-streamed tool calls carry JSON-string arguments, optional text and finish_reason tool_calls."""
    fake_openai.enqueue(ToolCalls([("get_weather", {"city": "Paris"})], text="Checking."))
    completion = oai.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER_TOOL]
    )
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls"
    assert message.content == "Checking."
    assert message.tool_calls is not None
    call = message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert isinstance(call.function.arguments, str) and json.loads(call.function.arguments) == {
        "city": "Paris"
    }


def test_openai_error_429_raises_rate_limit_error_then_the_queue_continues(
    oai: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    """Error(429) raises RateLimitError carrying retry-after; the next call gets the next queued reply."""
    fake_openai.enqueue(Error(429, headers={"retry-after": "2"}), Reply("hi"))
    with pytest.raises(openai.RateLimitError) as caught:
        oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.code == "rate_limit_exceeded" and caught.value.type == "requests"
    assert set(caught.value.response.json()["error"]) == {"message", "type", "param", "code"}
    completion = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert completion.choices[0].message.content == "hi"
    assert fake_openai.pending == 0


def test_openai_error_statuses_map_to_sdk_exceptions(oai: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    """Default error bodies for 401, 400 and 500 parse into the SDK's matching exception classes."""
    fake_openai.enqueue(Error(401), Error(400), Error(500))
    for expected in (openai.AuthenticationError, openai.BadRequestError, openai.InternalServerError):
        with pytest.raises(expected):
            oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])


def test_openai_cut_stream_makes_the_sdk_stream_raise(oai: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    """CutStream aborts the connection after N events, so iterating the SDK stream raises."""
    fake_openai.enqueue(CutStream(after_events=2))
    received = []
    with (
        pytest.raises(openai.APIConnectionError),
        oai.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "a long answer please"}], stream=True
        ) as stream,
    ):
        received.extend(stream)
    assert len(received) == 2


def test_openai_cut_non_stream_response_raises(oai: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    """CutStream on a non-streamed call truncates the body, which the SDK reports as a connection error."""
    fake_openai.enqueue(CutStream(after_events=1))
    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])


def test_slow_first_token_stalls_after_headers_on_streams(
    oai: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    """SlowFirstToken sends stream headers at once but holds the first event; a plain call waits whole."""
    fake_openai.enqueue(SlowFirstToken(0.3), SlowFirstToken(0.3, then=Reply("late")))
    with oai.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "x"}], stream=True
    ) as stream:
        headers_at = time.monotonic()
        next(iter(stream))
        first_event_at = time.monotonic()
    # asyncio may fire a timer up to its clock resolution early, hence the small tolerance.
    assert first_event_at - headers_at >= 0.29
    started = time.monotonic()
    completion = oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert time.monotonic() - started >= 0.29
    assert completion.choices[0].message.content == "late"


def test_openai_rejects_what_the_real_api_rejects(oai: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    """No auth, empty messages, bad roles, unanswered tool calls and unknown params get OpenAI's 4xx."""
    status, _, body = post_raw(
        f"{fake_openai.base_url}/chat/completions",
        {"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
        {},
    )
    assert status == 401 and json.loads(body)["error"]["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model=MODEL, messages=[])
    assert caught.value.code == "empty_array"
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model=MODEL, messages=[{"role": "bogus", "content": "x"}])
    assert caught.value.param == "messages[0].role"
    unanswered = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    ]}  # fmt: skip
    with pytest.raises(openai.BadRequestError, match="call_1"):
        oai.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}, unanswered])
    with pytest.raises(
        openai.BadRequestError, match="Unrecognized request argument supplied: max_tokens_to_sample"
    ):
        oai.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}], extra_body={"max_tokens_to_sample": 5}
        )
    assert fake_openai.pending == 0 and len(fake_openai.requests) == 5


def test_openai_models_endpoint_lists_models(oai: openai.OpenAI) -> None:
    """GET /v1/models returns the list shape the SDK pages over."""
    assert [model.id for model in oai.models.list()] == ["gpt-4o-mini", "gpt-4o"]


# --------------------------------------------------------------------------------- Anthropic


def test_anthropic_create_returns_a_message_with_cache_usage(
    claude: anthropic.Anthropic, fake_anthropic: FakeAnthropic
) -> None:
    """messages.create gets a text message echoing the last user text blocks, with all usage fields."""
    fake_anthropic.enqueue(Reply(cached_tokens=30, cache_creation_tokens=4, prompt_tokens=12))
    message = claude.messages.create(
        model=CLAUDE,
        max_tokens=64,
        system="be brief",
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "text", "text": "you"}]}
        ],
    )
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "fake: hello you"
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    usage = message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (
        12,
        30,
        4,
    )
    assert usage.output_tokens == 3
    recorded = fake_anthropic.requests[-1]
    assert recorded.path == "/v1/messages"
    # anthropic 2.x sends its api_key as a bearer token, which the real API accepts like x-api-key.
    assert recorded.headers["authorization"] == "Bearer sk-ant-test" and recorded.headers["anthropic-version"]


def test_anthropic_stream_helper_assembles_text_and_tool_use(
    claude: anthropic.Anthropic, fake_anthropic: FakeAnthropic
) -> None:
    """messages.stream reassembles a text block and a tool_use block whose input arrives as JSON fragments."""
    fake_anthropic.enqueue(ToolCalls([("get_weather", {"city": "Paris"})], text="Let me check."))
    with claude.messages.stream(
        model=CLAUDE,
        max_tokens=64,
        tools=[CLAUDE_WEATHER_TOOL],
        messages=[{"role": "user", "content": "weather?"}],
    ) as stream:
        text = "".join(stream.text_stream)
        message = stream.get_final_message()
    assert text == "Let me check."
    assert [block.type for block in message.content] == ["text", "tool_use"]
    tool_use = message.content[1]
    assert (
        tool_use.type == "tool_use" and tool_use.name == "get_weather" and tool_use.input == {"city": "Paris"}
    )
    assert tool_use.id.startswith("toolu_")
    assert message.stop_reason == "tool_use"
    assert message.usage.output_tokens == 6 and message.usage.input_tokens == 1


def test_anthropic_raw_stream_follows_the_documented_event_order(
    claude: anthropic.Anthropic, fake_anthropic: FakeAnthropic
) -> None:
    """A raw stream is message_start, ping, block start/deltas/stop, message_delta, message_stop."""
    fake_anthropic.enqueue(Reply("one two three", finish_reason="max_tokens"))
    with claude.messages.create(
        model=CLAUDE, max_tokens=3, messages=[{"role": "user", "content": "count"}], stream=True
    ) as stream:
        events = list(stream)
    kinds = [event.type for event in events]
    assert kinds == ["message_start", "content_block_start"] + ["content_block_delta"] * 3 + [
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    message_delta = events[-2]
    assert message_delta.type == "message_delta"
    assert message_delta.delta.stop_reason == "max_tokens" and message_delta.usage.output_tokens == 3
    status, headers, raw = post_raw(
        f"{fake_anthropic.base_url}/v1/messages",
        {"model": CLAUDE, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "stream": True},
        {"x-api-key": "k", "anthropic-version": "2023-06-01"},
    )
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream") and headers["request-id"]
    wire = [block.split("\n")[0] for block in raw.decode().split("\n\n") if block]
    assert wire[:3] == ["event: message_start", "event: ping", "event: content_block_start"]
    assert wire[-1] == "event: message_stop"


def test_anthropic_529_raises_overloaded_error(
    claude: anthropic.Anthropic, fake_anthropic: FakeAnthropic
) -> None:
    """Error(529) gets Anthropic's overloaded_error body and the SDK's OverloadedError."""
    fake_anthropic.enqueue(Error(529))
    with pytest.raises(anthropic.OverloadedError) as caught:
        claude.messages.create(model=CLAUDE, max_tokens=8, messages=[{"role": "user", "content": "x"}])
    body = caught.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "overloaded_error"
    assert body["request_id"] == caught.value.response.headers["request-id"]


def test_anthropic_cut_stream_breaks_the_sdk_stream(
    claude: anthropic.Anthropic, fake_anthropic: FakeAnthropic
) -> None:
    """CutStream aborts an Anthropic stream before message_stop, so the SDK stream raises."""
    fake_anthropic.enqueue(CutStream(after_events=3))
    received = []
    # Unlike openai's, the anthropic SDK lets the transport error out of stream iteration unwrapped.
    with (
        pytest.raises(httpx2.RemoteProtocolError, match="incomplete chunked read"),
        claude.messages.create(
            model=CLAUDE, max_tokens=8, messages=[{"role": "user", "content": "x"}], stream=True
        ) as stream,
    ):
        received.extend(event.type for event in stream)
    assert received == ["message_start", "content_block_start"]  # the ping in between is dropped by the SDK


def test_anthropic_system_role_message_is_rejected(claude: anthropic.Anthropic) -> None:
    """A "system" role inside messages is a 400 that points at the top-level system parameter."""
    with pytest.raises(anthropic.BadRequestError, match="top-level `system` parameter"):
        claude.messages.create(
            model=CLAUDE,
            max_tokens=8,
            messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "x"}],
        )


def test_anthropic_non_alternating_roles_are_rejected(claude: anthropic.Anthropic) -> None:
    """Two user messages in a row are a 400 invalid_request_error."""
    with pytest.raises(anthropic.BadRequestError, match="must alternate") as caught:
        claude.messages.create(
            model=CLAUDE,
            max_tokens=8,
            messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
        )
    assert caught.value.response.json()["error"]["type"] == "invalid_request_error"


def test_anthropic_tool_result_rules_are_enforced(
    claude: anthropic.Anthropic, fake_anthropic: FakeAnthropic
) -> None:
    """Unanswered tool_use and late tool_result are 400s; a proper round trip answers the last user text."""
    use = {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}],
    }
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "21C"}
    question = {"role": "user", "content": "weather in Paris?"}
    with pytest.raises(anthropic.BadRequestError, match="without `tool_result`"):
        claude.messages.create(
            model=CLAUDE,
            max_tokens=8,
            messages=[question, use, {"role": "user", "content": "and?"}],
        )
    late = {"role": "user", "content": [{"type": "text", "text": "here"}, result]}
    with pytest.raises(anthropic.BadRequestError, match="must come before"):
        claude.messages.create(model=CLAUDE, max_tokens=8, messages=[question, use, late])
    answered = {"role": "user", "content": [result]}
    message = claude.messages.create(model=CLAUDE, max_tokens=8, messages=[question, use, answered])
    assert message.content[0].text == "fake: weather in Paris?"


def test_anthropic_rejects_headers_nulls_unknown_keys_and_bad_schemas(fake_anthropic: FakeAnthropic) -> None:
    """Missing key or anthropic-version, null or OpenAI-only keys, bad schemas and temperature > 1 get 4xx."""
    url = f"{fake_anthropic.base_url}/v1/messages"
    ok = {"model": CLAUDE, "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}
    auth = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    cases: list[tuple[dict[str, Any], dict[str, str], int, str]] = [
        (ok, {"anthropic-version": "2023-06-01"}, 401, "authentication_error"),
        (ok, {"authorization": "Basic a2V5", "anthropic-version": "2023-06-01"}, 401, "x-api-key"),
        (ok, {"x-api-key": "k"}, 400, "anthropic-version"),
        ({**ok, "max_tokens": None}, auth, 400, "max_tokens"),
        (
            {key: value for key, value in ok.items() if key != "max_tokens"},
            auth,
            400,
            "max_tokens: Field required",
        ),
        ({**ok, "stream_options": {"include_usage": True}}, auth, 400, "Extra inputs"),
        ({**ok, "temperature": 1.5}, auth, 400, "less than or equal to 1"),
        (
            {**ok, "tools": [{"name": "f", "input_schema": {"type": "string"}}]},
            auth,
            400,
            "Input should be 'object'",
        ),
        ({**ok, "messages": []}, auth, 400, "at least one message"),
    ]
    for body, headers, expected_status, expected_text in cases:
        status, response_headers, raw = post_raw(url, body, headers)
        assert status == expected_status, (body, headers, raw)
        assert expected_text in raw.decode()
        error = json.loads(raw)
        assert error["type"] == "error" and error["request_id"] == response_headers["request-id"]
    assert len(fake_anthropic.requests) == len(cases)


def test_reset_clears_the_queue_and_recorded_requests(fake_anthropic: FakeAnthropic) -> None:
    """reset() forgets queued behaviours and recorded requests, and wait_for_requests sees new ones."""
    fake_anthropic.enqueue(Error(500), Error(500))
    post_raw(f"{fake_anthropic.base_url}/v1/nowhere", b"not json", {})
    assert fake_anthropic.wait_for_requests(1)[0].json is None
    fake_anthropic.reset()
    assert fake_anthropic.pending == 0 and fake_anthropic.requests == []
