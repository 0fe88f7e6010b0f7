"""The Anthropic Messages API (`/v1/messages`, `/v1/messages/count_tokens`) over GPT, Claude and mock
models, driven by the official `anthropic` SDK: replies, streams, tools, images, usage and every error
class arrive in Anthropic's shapes, and each provider receives a correct request in its own format."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import orjson
import pytest

from tests.conftest import MASTER_KEY, GatewayProcess, raw_request
from tests.fakes import Error, FakeAnthropic, FakeOpenAI, Reply, ToolCalls

USER = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
PNG_B64 = "iVBORw0KGgo="


@pytest.fixture
def claude(gateway: GatewayProcess) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.url, api_key=MASTER_KEY, max_retries=0, timeout=10) as c:
        yield c


def sse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data JSON) for each SSE event of a raw Messages stream."""
    events = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def post_raw(gateway: GatewayProcess, body: dict[str, Any], path: str = "/v1/messages") -> Any:
    return raw_request(
        gateway.url,
        "POST",
        path,
        orjson.dumps(body),
        {"x-api-key": MASTER_KEY, "content-type": "application/json"},
    )


# --- text, system, conversation -----------------------------------------------------------------


def test_text_reply_with_system_prompt_over_a_gpt_model(
    claude: anthropic.Anthropic, fake_openai: FakeOpenAI
) -> None:
    """A GPT model answers an Anthropic call with a text `message`; OpenAI gets a system message."""
    fake_openai.enqueue(Reply("Paris.", prompt_tokens=12, completion_tokens=3))
    reply = claude.messages.create(model="gpt-fake", max_tokens=50, system="Be brief.", messages=USER)
    assert reply.type == "message" and reply.role == "assistant"
    assert reply.id.startswith("msg_")
    assert reply.model == "gpt-fake"
    assert [(b.type, getattr(b, "text", None)) for b in reply.content] == [("text", "Paris.")]
    assert reply.stop_reason == "end_turn" and reply.stop_sequence is None
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (12, 3)
    sent = fake_openai.requests[-1].json
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, *USER]
    # OpenAI reasoning models refuse max_tokens, so OpenAI deployments get max_completion_tokens.
    assert sent["max_completion_tokens"] == 50 and "max_tokens" not in sent
    assert sent["model"] == "gpt-4o-mini"


def test_multi_turn_conversation_keeps_roles_and_order(
    claude: anthropic.Anthropic, fake_openai: FakeOpenAI
) -> None:
    """Earlier turns (string and block content) reach the provider in order with their roles."""
    messages: list[Any] = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": [{"type": "text", "text": "Hello! How can I help?"}]},
        {"role": "user", "content": [{"type": "text", "text": "Name a colour."}]},
    ]
    fake_openai.enqueue(Reply("Blue."))
    reply = claude.messages.create(model="gpt-fake", max_tokens=20, messages=messages)
    assert reply.content[0].type == "text" and reply.content[0].text == "Blue."
    assert fake_openai.requests[-1].json["messages"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Name a colour."},
    ]


def test_mock_model_echoes_through_messages(claude: anthropic.Anthropic) -> None:
    """The built-in mock model answers Messages calls too (no provider involved)."""
    reply = claude.messages.create(
        model="demo", max_tokens=50, messages=[{"role": "user", "content": "ping"}]
    )
    assert reply.content[0].type == "text" and reply.content[0].text == "echo: ping"
    assert reply.usage.output_tokens > 0


def test_claude_backend_keeps_cache_control_and_metadata(
    claude: anthropic.Anthropic, fake_anthropic: FakeAnthropic
) -> None:
    """Behind a Claude model, cache_control on system and user text survives and metadata.user_id is kept."""
    system: Any = [
        {"type": "text", "text": "You are a CLI."},
        {"type": "text", "text": "Long rules.", "cache_control": {"type": "ephemeral"}},
    ]
    content: Any = [{"type": "text", "text": "Hello", "cache_control": {"type": "ephemeral"}}]
    claude.messages.create(
        model="claude-fake",
        max_tokens=64,
        system=system,
        messages=[{"role": "user", "content": content}],
        metadata={"user_id": "user-42"},
        stop_sequences=["END"],
        extra_body={"temperature": 0.5},  # this SDK version no longer has the parameter; the API does
    )
    sent = fake_anthropic.requests[-1].json
    assert sent["system"] == system
    assert sent["messages"] == [{"role": "user", "content": content}]
    assert sent["metadata"] == {"user_id": "user-42"}
    assert sent["stop_sequences"] == ["END"] and sent["temperature"] == 0.5
    assert sent["max_tokens"] == 64 and sent["model"] == "claude-sonnet-4-5"


def test_anthropic_only_fields_do_not_leak_to_openai(
    claude: anthropic.Anthropic, fake_openai: FakeOpenAI
) -> None:
    """top_k, thinking and cache_control are not sent to OpenAI (which rejects unknown fields)."""
    fake_openai.enqueue(Reply("ok"))
    claude.messages.create(
        model="gpt-fake",
        max_tokens=2000,
        system=[{"type": "text", "text": "Rules.", "cache_control": {"type": "ephemeral"}}],
        messages=USER,
        thinking={"type": "enabled", "budget_tokens": 1024},
        metadata={"user_id": "user-42"},
        stop_sequences=["END"],
        extra_body={"top_k": 5, "temperature": 0.2},
    )
    sent = fake_openai.requests[-1].json
    assert set(sent) == {"model", "messages", "max_completion_tokens", "user", "stop", "temperature"}
    assert sent["messages"][0] == {"role": "system", "content": "Rules."}
    assert sent["user"] == "user-42" and sent["stop"] == ["END"]


# --- streams ------------------------------------------------------------------------------------


def test_stream_has_the_exact_event_sequence(gateway: GatewayProcess, fake_openai: FakeOpenAI) -> None:
    """A stream is message_start, ping, one text block (start, deltas, stop), message_delta, message_stop."""
    fake_openai.enqueue(Reply("Paris is the capital of France.", prompt_tokens=9, completion_tokens=7))
    status, headers, raw = post_raw(
        gateway, {"model": "gpt-fake", "max_tokens": 50, "messages": USER, "stream": True}
    )
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = sse_events(raw)
    assert all(name == data["type"] for name, data in events)
    names = [name for name, _ in events]
    deltas = names.count("content_block_delta")
    assert deltas >= 2
    assert names == [
        "message_start",
        "ping",
        "content_block_start",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["model"] == "gpt-fake"
    assert events[2][1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta" and d["index"] == 0)
    assert text == "Paris is the capital of France."
    final = events[-2][1]
    assert final["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert (final["usage"]["input_tokens"], final["usage"]["output_tokens"]) == (9, 7)


@pytest.mark.parametrize("model", ["gpt-fake", "claude-fake", "demo"])
def test_sdk_stream_helper_assembles_the_message(
    claude: anthropic.Anthropic, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, model: str
) -> None:
    """The SDK's `messages.stream()` helper rebuilds text and usage from the events, whatever the provider."""
    for fake in (fake_openai, fake_anthropic):
        fake.enqueue(Reply("one two three", prompt_tokens=5, completion_tokens=3))
    with claude.messages.stream(model=model, max_tokens=50, messages=USER) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    expected = "echo: What is the capital of France?" if model == "demo" else "one two three"
    assert text == expected and final.content[0].type == "text" and final.content[0].text == expected
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 3 if model != "demo" else final.usage.output_tokens > 0


def test_streamed_usage_converts_cached_tokens(claude: anthropic.Anthropic, fake_openai: FakeOpenAI) -> None:
    """OpenAI's prompt_tokens includes cached tokens; the stream's input_tokens excludes them."""
    fake_openai.enqueue(Reply("hi", prompt_tokens=100, completion_tokens=2, cached_tokens=40))
    with claude.messages.stream(model="gpt-fake", max_tokens=50, messages=USER) as stream:
        final = stream.get_final_message()
    assert final.usage.input_tokens == 60
    assert final.usage.cache_read_input_tokens == 40
    assert final.usage.output_tokens == 2


def test_max_tokens_stop_reason_streamed_and_not(
    claude: anthropic.Anthropic, fake_openai: FakeOpenAI
) -> None:
    """OpenAI's `length` finish is Anthropic's `max_tokens` stop reason, streamed and not."""
    fake_openai.enqueue(Reply("Paris is", finish_reason="length"), Reply("Paris is", finish_reason="length"))
    reply = claude.messages.create(model="gpt-fake", max_tokens=2, messages=USER)
    assert reply.stop_reason == "max_tokens"
    with claude.messages.stream(model="gpt-fake", max_tokens=2, messages=USER) as stream:
        assert stream.get_final_message().stop_reason == "max_tokens"


# --- usage --------------------------------------------------------------------------------------


def test_usage_from_claude_keeps_cache_reads_and_writes_apart(
    claude: anthropic.Anthropic, fake_anthropic: FakeAnthropic
) -> None:
    """Claude's input/cache-read/cache-write counts come back as Claude sent them (input excludes both)."""
    fake_anthropic.enqueue(
        Reply("ok", prompt_tokens=10, completion_tokens=4, cached_tokens=30, cache_creation_tokens=5)
    )
    reply = claude.messages.create(model="claude-fake", max_tokens=50, messages=USER)
    usage = reply.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (
        10,
        30,
        5,
    )
    assert usage.output_tokens == 4


def test_usage_from_gpt_subtracts_cached_tokens(claude: anthropic.Anthropic, fake_openai: FakeOpenAI) -> None:
    """OpenAI's cached tokens become cache_read_input_tokens and leave input_tokens."""
    fake_openai.enqueue(Reply("ok", prompt_tokens=100, completion_tokens=4, cached_tokens=64))
    usage = claude.messages.create(model="gpt-fake", max_tokens=50, messages=USER).usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (
        36,
        64,
        0,
    )


# --- tools --------------------------------------------------------------------------------------


def test_tool_use_round_trip_over_a_gpt_model(claude: anthropic.Anthropic, fake_openai: FakeOpenAI) -> None:
    """A GPT tool call arrives as a tool_use block; its tool_result reaches OpenAI as a tool message."""
    fake_openai.enqueue(ToolCalls([("get_weather", {"city": "Paris"})]))
    first = claude.messages.create(
        model="gpt-fake",
        max_tokens=100,
        messages=USER,
        tools=[WEATHER],  # type: ignore[list-item]  # a plain dict is what the SDK sends anyway
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
    )
    assert first.stop_reason == "tool_use"
    [use] = first.content
    assert use.type == "tool_use" and use.name == "get_weather" and use.input == {"city": "Paris"}
    sent = fake_openai.requests[-1].json
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather in a city",
                "parameters": WEATHER["input_schema"],
            },
        }
    ]
    assert sent["tool_choice"] == "required" and sent["parallel_tool_calls"] is False

    fake_openai.enqueue(Reply("It is sunny in Paris."))
    second = claude.messages.create(
        model="gpt-fake",
        max_tokens=100,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[
            *USER,
            {"role": "assistant", "content": [use.model_dump()]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 21 C"}],
            },
        ],
    )
    assert second.content[0].type == "text" and second.content[0].text == "It is sunny in Paris."
    messages = fake_openai.requests[-1].json["messages"]
    call = messages[1]["tool_calls"][0]
    assert call["id"] == use.id and json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert messages[2] == {"role": "tool", "tool_call_id": use.id, "content": "sunny, 21 C"}


def test_failed_tool_result_is_marked_in_the_text(
    claude: anthropic.Anthropic, fake_openai: FakeOpenAI
) -> None:
    """`is_error: true` on a tool_result is noted in the tool message text (OpenAI has no error flag)."""
    fake_openai.enqueue(Reply("Sorry."))
    claude.messages.create(
        model="gpt-fake",
        max_tokens=100,
        messages=[
            *USER,
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_9", "name": "f", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_9",
                        "content": [{"type": "text", "text": "city not found"}],
                        "is_error": True,
                    },
                    {"type": "text", "text": "Try again?"},
                ],
            },
        ],
    )
    messages = fake_openai.requests[-1].json["messages"]
    assert messages[2] == {"role": "tool", "tool_call_id": "toolu_9", "content": "Error: city not found"}
    assert messages[3] == {"role": "user", "content": "Try again?"}


def test_streamed_parallel_tool_calls_get_one_block_each(
    gateway: GatewayProcess, claude: anthropic.Anthropic, fake_openai: FakeOpenAI
) -> None:
    """Streamed tool calls become tool_use blocks at indexes 0 and 1, with no empty text block first."""
    fake_openai.enqueue(ToolCalls([("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]))
    body = {"model": "gpt-fake", "max_tokens": 100, "messages": USER, "tools": [WEATHER], "stream": True}
    _, _, raw = post_raw(gateway, body)
    starts = [d for n, d in sse_events(raw) if n == "content_block_start"]
    assert [(s["index"], s["content_block"]["type"]) for s in starts] == [(0, "tool_use"), (1, "tool_use")]

    fake_openai.enqueue(ToolCalls([("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]))
    with claude.messages.stream(
        model="gpt-fake",
        max_tokens=100,
        messages=USER,
        tools=[WEATHER],  # type: ignore[list-item]
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [(b.type, getattr(b, "input", None)) for b in final.content] == [
        ("tool_use", {"city": "Paris"}),
        ("tool_use", {"city": "Rome"}),
    ]
    assert len({b.id for b in final.content if b.type == "tool_use"}) == 2


def test_text_then_tool_call_from_claude_streams_two_blocks(
    claude: anthropic.Anthropic, fake_anthropic: FakeAnthropic
) -> None:
    """Behind a Claude model, text then a tool call stream as a text block then a tool_use block."""
    fake_anthropic.enqueue(ToolCalls([("get_weather", {"city": "Paris"})], text="Let me check."))
    with claude.messages.stream(
        model="claude-fake",
        max_tokens=100,
        messages=USER,
        tools=[WEATHER],  # type: ignore[list-item]
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[0].type == "text" and final.content[0].text == "Let me check."
    assert final.content[1].type == "tool_use" and final.content[1].input == {"city": "Paris"}
    assert final.stop_reason == "tool_use"


def test_server_tools_are_refused_by_name(claude: anthropic.Anthropic, fake_openai: FakeOpenAI) -> None:
    """An Anthropic server tool (web search) is a clear 400 naming it; nothing reaches the provider."""
    with pytest.raises(anthropic.BadRequestError) as info:
        claude.messages.create(
            model="gpt-fake",
            max_tokens=100,
            messages=USER,
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
        )
    assert "web_search_20250305" in info.value.message
    assert fake_openai.requests == []


# --- images and documents -----------------------------------------------------------------------


def test_images_reach_openai_as_image_url_parts(claude: anthropic.Anthropic, fake_openai: FakeOpenAI) -> None:
    """Base64 and URL image blocks become an OpenAI data URL and an image URL, in order."""
    fake_openai.enqueue(Reply("Two images."))
    claude.messages.create(
        model="gpt-fake",
        max_tokens=50,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare these."},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
                ],
            }
        ],
    )
    assert fake_openai.requests[-1].json["messages"][0]["content"] == [
        {"type": "text", "text": "Compare these."},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
    ]


def test_images_reach_claude_as_image_blocks(
    claude: anthropic.Anthropic, fake_anthropic: FakeAnthropic
) -> None:
    """Behind a Claude model, an image block arrives as the same base64 image block."""
    image: Any = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}}
    claude.messages.create(
        model="claude-fake",
        max_tokens=50,
        messages=[{"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]}],
    )
    assert fake_anthropic.requests[-1].json["messages"][0]["content"][1] == image


def test_pdf_documents_are_refused(claude: anthropic.Anthropic) -> None:
    """A PDF document block is a 400 that says PDFs cannot be translated."""
    document: Any = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
    }
    with pytest.raises(anthropic.BadRequestError) as info:
        claude.messages.create(
            model="gpt-fake", max_tokens=50, messages=[{"role": "user", "content": [document]}]
        )
    assert "PDF" in info.value.message


# --- errors -------------------------------------------------------------------------------------


def error_of(exc: anthropic.APIStatusError) -> dict[str, Any]:
    body = exc.body
    assert isinstance(body, dict) and body["type"] == "error"
    error: dict[str, Any] = body["error"]
    return error


def test_bad_key_is_authentication_error(gateway: GatewayProcess) -> None:
    """A wrong key raises the SDK's AuthenticationError with an Anthropic error body."""
    with (
        anthropic.Anthropic(base_url=gateway.url, api_key="sk-wrong", max_retries=0) as bad,
        pytest.raises(anthropic.AuthenticationError) as info,
    ):
        bad.messages.create(model="demo", max_tokens=10, messages=USER)
    assert error_of(info.value)["type"] == "authentication_error"


def test_unknown_model_is_not_found(claude: anthropic.Anthropic) -> None:
    """An unknown model raises NotFoundError (`not_found_error`)."""
    with pytest.raises(anthropic.NotFoundError) as info:
        claude.messages.create(model="claude-9", max_tokens=10, messages=USER)
    assert error_of(info.value)["type"] == "not_found_error"
    assert "claude-9" in error_of(info.value)["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "demo", "messages": USER}, "max_tokens: Field required"),
        ({"max_tokens": 5, "messages": USER}, "model: Field required"),
        ({"model": "demo", "max_tokens": 5}, "messages: Field required"),
        (
            {"model": "demo", "max_tokens": "5", "messages": USER},
            "max_tokens: Input should be a valid integer",
        ),
        ({"model": "demo", "max_tokens": 5, "messages": "hi"}, "messages: Input should be a valid list"),
        (
            {"model": "demo", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
            "messages.0.role: Input should be 'user' or 'assistant'",
        ),
    ],
)
def test_invalid_requests_are_anthropic_400s(
    claude: anthropic.Anthropic, body: dict[str, Any], message: str
) -> None:
    """Missing or mistyped required fields raise BadRequestError with Anthropic's wording."""
    with pytest.raises(anthropic.BadRequestError) as info:
        claude.post("/v1/messages", body=body, cast_to=object)
    error = error_of(info.value)
    assert error["type"] == "invalid_request_error" and error["message"] == message


def test_invalid_json_and_wrong_method_are_anthropic_errors(gateway: GatewayProcess) -> None:
    """Even transport-level failures on /v1/messages use Anthropic's error body."""
    status, _, body = raw_request(
        gateway.url, "POST", "/v1/messages", b"{not json", {"x-api-key": MASTER_KEY}
    )
    assert status == 400 and orjson.loads(body)["error"]["type"] == "invalid_request_error"
    status, _, body = raw_request(gateway.url, "GET", "/v1/messages", None, {"x-api-key": MASTER_KEY})
    assert status == 405 and orjson.loads(body)["type"] == "error"


def test_provider_429_is_rate_limit_error_with_retry_after(
    claude: anthropic.Anthropic, fake_openai: FakeOpenAI
) -> None:
    """A provider 429 raises RateLimitError (`rate_limit_error`) and keeps `retry-after`."""
    fake_openai.enqueue(Error(429, headers={"retry-after": "7"}))
    with pytest.raises(anthropic.RateLimitError) as info:
        claude.messages.create(model="gpt-fake", max_tokens=10, messages=USER)
    assert info.value.response.headers["retry-after"] == "7"
    assert error_of(info.value)["type"] == "rate_limit_error"


@pytest.mark.parametrize(("model", "status"), [("gpt-fake", 500), ("claude-fake", 529), ("demo-fail", None)])
def test_provider_5xx_is_502_internal_server_error(
    claude: anthropic.Anthropic,
    fake_openai: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    model: str,
    status: int | None,
) -> None:
    """Provider 5xx (Claude's 529, the mock's injected 503) raise InternalServerError with status 502."""
    if status is not None:
        (fake_openai if model == "gpt-fake" else fake_anthropic).enqueue(Error(status))
    with pytest.raises(anthropic.InternalServerError) as info:
        claude.messages.create(model=model, max_tokens=10, messages=USER)
    assert info.value.status_code == 502
    assert error_of(info.value)["type"] == "api_error" and error_of(info.value)["message"]


def test_stream_error_before_first_token_is_an_http_error(
    claude: anthropic.Anthropic, fake_openai: FakeOpenAI
) -> None:
    """A provider error on a streamed call raises from `create`, before any event."""
    fake_openai.enqueue(Error(429, headers={"retry-after": "3"}))
    with pytest.raises(anthropic.RateLimitError):
        claude.messages.create(model="gpt-fake", max_tokens=10, messages=USER, stream=True)


def test_failure_after_first_byte_ends_with_an_error_event(
    gateway: GatewayProcess, claude: anthropic.Anthropic
) -> None:
    """A stream cut mid-way (demo-cut) ends with `event: error`, which the SDK raises after the first text."""
    _, _, raw = post_raw(gateway, {"model": "demo-cut", "max_tokens": 50, "messages": USER, "stream": True})
    events = sse_events(raw)
    assert events[0][0] == "message_start"
    name, data = events[-1]
    assert name == "error" and data["type"] == "error" and data["error"]["type"] == "api_error"
    assert "message_stop" not in [n for n, _ in events]
    assert any(n == "content_block_delta" for n, _ in events)

    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as info:  # the error arrives mid-iteration
        for event in claude.messages.create(model="demo-cut", max_tokens=50, messages=USER, stream=True):
            seen.append(event.type)
    assert "content_block_delta" in seen
    assert isinstance(info.value.body, dict) and info.value.body["type"] == "error"


def test_model_headers_are_set_on_messages_replies(gateway: GatewayProcess) -> None:
    """Messages replies carry the request id and the deployment that served them."""
    status, headers, _ = post_raw(gateway, {"model": "demo", "max_tokens": 5, "messages": USER})
    assert status == 200
    assert headers["x-sluicegate-deployment"] == "mock/demo" and headers["x-request-id"]


# --- count_tokens ---------------------------------------------------------------------------------


def test_count_tokens_is_forwarded_to_anthropic(
    claude: anthropic.Anthropic, fake_anthropic: FakeAnthropic
) -> None:
    """For a Claude model, count_tokens asks Anthropic's own endpoint with the provider's model id."""
    counted = claude.messages.count_tokens(
        model="claude-fake",
        system="Be brief.",
        messages=[{"role": "user", "content": "one two three four"}],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    sent = fake_anthropic.requests[-1]
    assert sent.path == "/v1/messages/count_tokens"
    assert sent.json["model"] == "claude-sonnet-4-5" and sent.json["tools"] == [WEATHER]
    assert counted.input_tokens == 6  # the fake counts words: 2 in the system prompt, 4 in the message


def test_count_tokens_estimates_for_other_models(
    gateway: GatewayProcess, claude: anthropic.Anthropic, fake_openai: FakeOpenAI
) -> None:
    """For a non-Claude model, count_tokens estimates (characters / 4 plus 3 per message) without a call."""
    text = "x" * 100
    counted = claude.messages.count_tokens(
        model="gpt-fake",
        messages=[{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}],
    )
    assert counted.input_tokens == math.ceil(102 / 4) + 2 * 3
    assert fake_openai.requests == []
    body = {"model": "gpt-fake", "messages": USER}
    _, headers, _ = post_raw(gateway, body, "/v1/messages/count_tokens")
    assert headers["x-sluicegate-token-count"] == "estimate"


def test_count_tokens_unknown_model_is_not_found(claude: anthropic.Anthropic) -> None:
    """count_tokens for an unknown model raises NotFoundError."""
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.count_tokens(model="nope", messages=USER)  # type: ignore[arg-type]


# --- Claude Code -------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["gpt-fake", "claude-fake", "demo"])
def test_claude_code_shaped_conversation_is_accepted_by_every_backend(
    gateway: GatewayProcess, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, model: str
) -> None:
    """A Claude-Code-shaped streamed call (`?beta=true`, system blocks, tools, thinking, a tool round trip)
    passes each provider's strict validation and streams to message_stop."""
    fixture = (
        Path(__file__).parents[1] / "unit" / "fixtures" / "anthropic_ingress" / "request_claude_code.json"
    )
    body = {**orjson.loads(fixture.read_bytes())["anthropic"], "model": model}
    status, _, raw = post_raw(gateway, body, "/v1/messages?beta=true")
    assert status == 200, raw
    names = [name for name, _ in sse_events(raw)]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    if model != "demo":
        fake = fake_openai if model == "gpt-fake" else fake_anthropic
        assert len(fake.requests) == 1
