"""AnthropicAdapter on recorded fixtures: OpenAI requests out, Messages replies and streams back in."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from sluicegate.errors import InvalidRequestError, UpstreamProtocolError, UpstreamStatusError
from sluicegate.providers.anthropic import AnthropicAdapter
from sluicegate.providers.base import StreamTranslator
from sluicegate.types import ChatRequest
from sluicegate.upstream.sse import SSEDecoder, SSEEvent

from ._helpers import (
    adapter_factory,
    chat_request,
    decode_frames,
    event,
    feed_stream,
    fixture_dir,
    load_fixture,
    reply,
    sent_body,
)

FIXTURES = fixture_dir("anthropic")
HELLO = [{"role": "user", "content": "Hello"}]

make_adapter = adapter_factory(
    AnthropicAdapter, name="claude", provider="anthropic", model="claude-sonnet-4-5", api_key="sk-ant-test"
)


def load(name: str) -> Any:
    return load_fixture("anthropic", name)


def chat(body: dict[str, Any], *, include_usage: bool = False) -> ChatRequest:
    return chat_request(body, "claude", include_usage=include_usage)


def sent(body: dict[str, Any], **entry: Any) -> dict[str, Any]:
    """The JSON body the adapter would send to Anthropic for this OpenAI body."""
    return sent_body(make_adapter(**entry), chat(body))


def run_stream(name: str, *, include_usage: bool = False) -> tuple[StreamTranslator, list[bytes]]:
    """Feed a raw SSE transcript through SSEDecoder and the translator in awkward 37-byte reads."""
    translator = make_adapter().stream_translator(
        chat({"messages": HELLO, "stream": True}, include_usage=include_usage)
    )
    return translator, feed_stream(translator, SSEDecoder(), (FIXTURES / name).read_bytes(), read=37)


# --- the upstream request ---------------------------------------------------------------------


def test_request_goes_to_messages_endpoint_with_key_version_and_extra_headers() -> None:
    """The request is a POST to /v1/messages with x-api-key, anthropic-version and the entry's own headers."""
    adapter = make_adapter(headers={"anthropic-beta": "feature-x"})
    upstream = adapter.build_request(chat({"model": "claude", "messages": HELLO}))
    assert upstream.method == "POST"
    assert upstream.url == "https://api.anthropic.com/v1/messages"
    assert upstream.headers == {
        "x-api-key": "sk-ant-test",
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
        "accept-encoding": "identity",
        "anthropic-beta": "feature-x",
    }
    assert adapter.build_request(chat({"messages": HELLO})).headers is upstream.headers


@pytest.mark.parametrize(
    "api_base",
    [
        "https://proxy.example.com",
        "https://proxy.example.com/",
        "https://proxy.example.com/v1",
        "https://proxy.example.com/v1/",
    ],
)
def test_custom_api_base_gets_exactly_one_v1(api_base: str) -> None:
    """A custom api_base gets /v1/messages appended without doubling a trailing /v1."""
    assert make_adapter(api_base=api_base).url == "https://proxy.example.com/v1/messages"


def test_system_and_developer_strings_join_into_one_system_string() -> None:
    """System and developer messages anywhere in the conversation become one `system` string, in order."""
    case = load("request_openai_system_strings.json")
    assert sent(case["openai"]) == case["anthropic"]


def test_system_with_text_parts_becomes_text_blocks_keeping_cache_control() -> None:
    """When any system/developer message uses text parts, `system` is a list of text blocks in order."""
    case = load("request_openai_system_parts.json")
    assert sent(case["openai"]) == case["anthropic"]


def test_consecutive_same_role_messages_merge_into_one_turn() -> None:
    """Consecutive user (or assistant) messages are merged into one turn with a block list."""
    case = load("request_openai_alternation.json")
    assert sent(case["openai"]) == case["anthropic"]


def test_images_become_base64_or_url_image_blocks() -> None:
    """A data URL becomes a base64 image block with its media type; an https URL becomes a url image block."""
    case = load("request_openai_images.json")
    assert sent(case["openai"]) == case["anthropic"]


def test_image_data_url_without_base64_is_rejected() -> None:
    """A data URL that is not base64 gets a 400 naming the part's url."""
    body = {
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,xyz"}}]}
        ]
    }
    with pytest.raises(InvalidRequestError) as info:
        sent(body)
    assert info.value.param == "messages[0].content[0].image_url.url"


def test_tools_named_choice_and_parallel_false_translate() -> None:
    """Tools get an input_schema (default if absent), a named choice is `tool`, parallel false is kept."""
    case = load("request_openai_tools.json")
    assert sent(case["openai"]) == case["anthropic"]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        ({"type": "function", "function": {"name": "f"}}, {"type": "tool", "name": "f"}),
    ],
)
def test_tool_choice_variants_map_to_anthropic(choice: Any, expected: dict[str, Any]) -> None:
    """Each OpenAI tool_choice form maps to its Anthropic tool_choice object."""
    tools = [{"type": "function", "function": {"name": "f"}}]
    assert sent({"messages": HELLO, "tools": tools, "tool_choice": choice})["tool_choice"] == expected


def test_parallel_tool_calls_false_without_choice_creates_auto_choice() -> None:
    """parallel_tool_calls false with tools but no tool_choice sends auto with parallel use disabled."""
    tools = [{"type": "function", "function": {"name": "f"}}]
    body = sent({"messages": HELLO, "tools": tools, "parallel_tool_calls": False})
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    required = sent(
        {"messages": HELLO, "tools": tools, "tool_choice": "required", "parallel_tool_calls": False}
    )
    assert required["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert "tool_choice" not in sent({"messages": HELLO, "tools": tools, "parallel_tool_calls": True})


def test_consecutive_tool_messages_become_one_user_turn_with_results_first() -> None:
    """Two tool messages and a following user message become one user turn, tool_result blocks first."""
    case = load("request_openai_tool_results.json")
    assert sent(case["openai"]) == case["anthropic"]


def test_tool_results_open_the_user_turn_even_when_a_user_message_came_between() -> None:
    """tool_result blocks are moved ahead of user text merged into the same turn, as Anthropic requires."""
    calls = [
        {"id": f"t{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}} for i in (1, 2)
    ]
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "t1", "content": "one"},
        {"role": "user", "content": "note"},
        {"role": "tool", "tool_call_id": "t2", "content": "two"},
    ]
    assert sent({"messages": messages})["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "one"},
            {"type": "tool_result", "tool_use_id": "t2", "content": "two"},
            {"type": "text", "text": "note"},
        ],
    }


def test_invalid_tool_call_arguments_get_400_naming_the_param() -> None:
    """Assistant tool_call arguments that are not JSON get a 400 naming the exact parameter path."""
    messages = [
        {"role": "user", "content": "Hi"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "toolu_2", "type": "function", "function": {"name": "f", "arguments": "{not json"}},
            ],
        },
    ]
    with pytest.raises(InvalidRequestError) as info:
        sent({"messages": messages})
    assert info.value.param == "messages[1].tool_calls[1].function.arguments"
    assert info.value.http_status == 400


def test_empty_tool_call_arguments_become_empty_input() -> None:
    """Empty arguments (sent for parameterless functions) become an empty input object."""
    messages = [
        {"role": "user", "content": "Hi"},
        {
            "role": "assistant",
            "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": ""}}],
        },
    ]
    assert sent({"messages": messages})["messages"][1]["content"] == [
        {"type": "tool_use", "id": "t1", "name": "f", "input": {}}
    ]


def test_sampling_limits_user_stream_and_json_schema_translate() -> None:
    """max_completion_tokens wins; stop, temperature, user, stream and json_schema map per §3.5."""
    case = load("request_openai_sampling.json")
    assert sent(case["openai"]) == case["anthropic"]


def test_max_tokens_defaults_to_entry_default_then_4096() -> None:
    """Without max tokens from the caller, max_tokens is the entry's default_max_tokens, else 4096."""
    assert sent({"messages": HELLO})["max_tokens"] == 4096
    assert sent({"messages": HELLO}, default_max_tokens=1024)["max_tokens"] == 1024
    assert sent({"messages": HELLO, "max_tokens": 77}, default_max_tokens=1024)["max_tokens"] == 77


def test_stop_list_becomes_stop_sequences() -> None:
    """A list `stop` is sent as the same list of stop_sequences."""
    assert sent({"messages": HELLO, "stop": ["a", "b"]})["stop_sequences"] == ["a", "b"]


@pytest.mark.parametrize(("given", "expected"), [(0, 0), (0.3, 0.3), (1, 1), (1.2, 1), (2, 1)])
def test_temperature_is_clamped_to_anthropic_range(given: float, expected: float) -> None:
    """OpenAI temperatures above 1 are clamped to Anthropic's maximum of 1; others pass unchanged."""
    assert sent({"messages": HELLO, "temperature": given})["temperature"] == expected


def test_null_and_absent_parameters_are_not_sent() -> None:
    """Parameters the caller left out or set to null never appear in the upstream body."""
    absent = ("temperature", "top_p", "stop", "tools", "tool_choice", "user", "seed", "n", "max_tokens")
    body: dict[str, Any] = {"messages": HELLO, **dict.fromkeys(absent)}
    assert sent(body) == {"model": "claude-sonnet-4-5", "max_tokens": 4096, "messages": HELLO}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("n", 2),
        ("logprobs", True),
        ("top_logprobs", 3),
        ("logit_bias", {"50256": -100}),
        ("frequency_penalty", 0.5),
        ("presence_penalty", -0.5),
        ("seed", 0),
    ],
)
def test_unsupported_parameter_gets_400_naming_it(name: str, value: Any) -> None:
    """A parameter Anthropic cannot honour gets a 400 unsupported_parameter naming it."""
    with pytest.raises(InvalidRequestError) as info:
        sent({"messages": HELLO, name: value})
    assert (info.value.http_status, info.value.param, info.value.code) == (400, name, "unsupported_parameter")


def test_unsupported_parameters_are_dropped_with_drop_params() -> None:
    """With drop_params the unsupported parameters are silently left out of the upstream body."""
    body = {
        "messages": HELLO,
        "n": 3,
        "logprobs": True,
        "top_logprobs": 2,
        "logit_bias": {"1": 1},
        "frequency_penalty": 1.0,
        "presence_penalty": 1.0,
        "seed": 7,
    }
    assert sent(body, drop_params=True) == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "messages": HELLO,
    }


def test_neutral_values_of_unsupported_parameters_are_accepted() -> None:
    """n=1, logprobs false and zero penalties ask for nothing, so they are accepted and not sent."""
    body = {"messages": HELLO, "n": 1, "logprobs": False, "frequency_penalty": 0, "presence_penalty": 0.0}
    assert sent(body) == {"model": "claude-sonnet-4-5", "max_tokens": 4096, "messages": HELLO}


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("request_openai_*.json")))
def test_build_request_leaves_the_callers_body_untouched(name: str) -> None:
    """Translating a request never mutates request.body (a retry on another deployment reuses it)."""
    body = load(name)["openai"]
    before = copy.deepcopy(body)
    make_adapter().build_request(chat(body))
    assert body == before


# --- the non-streamed reply -------------------------------------------------------------------


def test_text_reply_becomes_chat_completion_with_cache_usage() -> None:
    """Text blocks are concatenated and usage counts cache reads and writes in prompt_tokens."""
    case = load("response_anthropic_text.json")
    result = make_adapter().parse_response(chat({"messages": HELLO}), reply(case["anthropic"]))
    body = orjson.loads(result.content)
    assert isinstance(body.pop("created"), int)
    assert body == case["openai"]
    assert result.finish_reason == "stop"
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (2125, 40)
    assert (result.usage.cached_tokens, result.usage.cache_write_tokens) == (2000, 100)


def test_tool_use_reply_becomes_tool_calls() -> None:
    """tool_use blocks become OpenAI tool_calls with JSON-string arguments and finish_reason tool_calls."""
    case = load("response_anthropic_tool_use.json")
    result = make_adapter().parse_response(chat({"messages": HELLO}), reply(case["anthropic"]))
    body = orjson.loads(result.content)
    body.pop("created")
    assert body == case["openai"]
    assert result.finish_reason == "tool_calls"


def test_reply_with_only_tool_calls_has_null_content() -> None:
    """A reply made only of tool_use blocks has message.content null."""
    anthropic = load("response_anthropic_tool_use.json")["anthropic"]
    anthropic["content"] = anthropic["content"][1:]
    body = orjson.loads(make_adapter().parse_response(chat({"messages": HELLO}), reply(anthropic)).content)
    assert body["choices"][0]["message"]["content"] is None
    assert len(body["choices"][0]["message"]["tool_calls"]) == 2


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_every_stop_reason_maps_to_its_finish_reason(stop_reason: str, finish_reason: str) -> None:
    """Each Anthropic stop_reason maps to the OpenAI finish_reason of reference §8."""
    anthropic = load("response_anthropic_text.json")["anthropic"]
    anthropic["stop_reason"] = stop_reason
    result = make_adapter().parse_response(chat({"messages": HELLO}), reply(anthropic))
    assert result.finish_reason == finish_reason
    assert orjson.loads(result.content)["choices"][0]["finish_reason"] == finish_reason


@pytest.mark.parametrize("raw", [b"<html>bad gateway</html>", b"[1, 2]", b'{"id": "msg_1"}'])
def test_unparseable_reply_is_a_protocol_error(raw: bytes) -> None:
    """A reply that is not JSON, or not a Messages object, raises UpstreamProtocolError."""
    with pytest.raises(UpstreamProtocolError):
        make_adapter().parse_response(chat({"messages": HELLO}), reply(raw))


# --- the stream -------------------------------------------------------------------------------


def test_text_stream_becomes_openai_chunks_without_usage_chunk() -> None:
    """A text stream becomes role, content and finish chunks then [DONE], with no usage when not asked."""
    translator, frames = run_stream("stream_text.txt")
    chunks = decode_frames(frames)
    assert chunks[-1] == "[DONE]"
    assert chunks[:-1] == load("stream_text.expected.json")
    assert translator.finished and translator.finish() == []
    assert translator.usage is not None
    assert (
        translator.usage.prompt_tokens,
        translator.usage.cached_tokens,
        translator.usage.completion_tokens,
    ) == (
        35,
        10,
        12,
    )


def test_include_usage_adds_usage_chunk_before_done() -> None:
    """With include_usage, chunks carry usage null and a final choices-less usage chunk precedes [DONE]."""
    _, frames = run_stream("stream_text.txt", include_usage=True)
    chunks = decode_frames(frames)
    assert chunks[-1] == "[DONE]"
    assert all(chunk["usage"] is None for chunk in chunks[:-2])
    assert chunks[-2] == {
        "id": "msg_01Stream",
        "object": "chat.completion.chunk",
        "model": "claude-sonnet-4-5-20250929",
        "choices": [],
        "usage": {
            "prompt_tokens": 35,
            "completion_tokens": 12,
            "total_tokens": 47,
            "prompt_tokens_details": {"cached_tokens": 10},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }


def test_tool_use_blocks_after_text_are_tool_calls_0_and_1() -> None:
    """Tool calls count tool_use blocks only (0 and 1 after thinking and text blocks); thinking is dropped."""
    translator, frames = run_stream("stream_tools.txt")
    chunks = decode_frames(frames)
    assert chunks[:-1] == load("stream_tools.expected.json")
    assert chunks[-1] == "[DONE]"
    assert translator.usage is not None and translator.usage.completion_tokens == 89


def test_ping_and_unknown_events_produce_nothing() -> None:
    """ping events and event types this adapter does not know are dropped."""
    translator = make_adapter().stream_translator(chat({"messages": HELLO, "stream": True}))
    assert translator.feed(event({"type": "ping"})) == []
    assert translator.feed(event({"type": "brand_new_event", "x": 1})) == []
    assert translator.feed(event({"type": "content_block_stop", "index": 0})) == []


def test_error_event_raises_upstream_status_error() -> None:
    """An `error` event mid-stream raises UpstreamStatusError with the status of its Anthropic error type."""
    translator = make_adapter().stream_translator(chat({"messages": HELLO, "stream": True}))
    decoder = SSEDecoder()
    with pytest.raises(UpstreamStatusError) as info:
        for sse in decoder.feed((FIXTURES / "stream_error.txt").read_bytes()):
            translator.feed(sse)
    error = info.value
    assert (error.upstream_status, error.code, error.message) == (529, "overloaded_error", "Overloaded")
    assert (error.http_status, error.error_type) == (502, "api_error")


def test_non_json_stream_event_is_a_protocol_error() -> None:
    """A stream event whose data is not JSON raises UpstreamProtocolError."""
    translator = make_adapter().stream_translator(chat({"messages": HELLO, "stream": True}))
    with pytest.raises(UpstreamProtocolError):
        translator.feed(SSEEvent("message_start", b"not json"))


def test_cut_stream_fails_at_finish_but_keeps_usage_seen() -> None:
    """A stream cut before message_stop makes finish() raise, while .usage still bills what was streamed."""
    translator, frames = run_stream("stream_cut.txt")
    chunks = decode_frames(frames)
    assert "[DONE]" not in chunks
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    with pytest.raises(UpstreamProtocolError):
        translator.finish()
    assert translator.usage is not None
    assert (translator.usage.prompt_tokens, translator.usage.cache_write_tokens) == (70, 20)
    assert translator.usage.completion_tokens == 7


# --- errors -----------------------------------------------------------------------------------


def anthropic_error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"}


def test_400_maps_to_invalid_request_error() -> None:
    """A 400 keeps status and message, becomes invalid_request_error, and keeps Anthropic's type as code."""
    error = make_adapter().map_error(
        reply(anthropic_error("invalid_request_error", "max_tokens: too big"), 400)
    )
    assert isinstance(error, UpstreamStatusError)
    assert (error.http_status, error.error_type, error.code) == (
        400,
        "invalid_request_error",
        "invalid_request_error",
    )
    assert error.message == "max_tokens: too big"


def test_401_maps_to_authentication_error() -> None:
    """A 401 becomes an authentication_error that is not retried."""
    error = make_adapter().map_error(reply(anthropic_error("authentication_error", "invalid x-api-key"), 401))
    assert isinstance(error, UpstreamStatusError)
    assert (error.http_status, error.error_type, error.code) == (
        401,
        "authentication_error",
        "authentication_error",
    )
    assert not error.is_retryable


def test_429_keeps_retry_after_headers_only() -> None:
    """A 429 becomes a rate_limit_error carrying retry-after and retry-after-ms but no other header."""
    headers = {"retry-after": "7", "retry-after-ms": "6500", "anthropic-ratelimit-requests-remaining": "0"}
    error = make_adapter().map_error(reply(anthropic_error("rate_limit_error", "slow down"), 429, headers))
    assert isinstance(error, UpstreamStatusError)
    assert (error.http_status, error.error_type, error.code) == (429, "rate_limit_error", "rate_limit_error")
    assert error.headers == {"retry-after": "7", "retry-after-ms": "6500"}
    assert error.is_retryable


def test_529_overloaded_maps_to_retryable_api_error() -> None:
    """A 529 overloaded_error becomes a retryable api_error shown to the client as 502."""
    error = make_adapter().map_error(reply(anthropic_error("overloaded_error", "Overloaded"), 529))
    assert isinstance(error, UpstreamStatusError)
    assert (error.upstream_status, error.http_status, error.error_type) == (529, 502, "api_error")
    assert error.code == "overloaded_error" and error.is_retryable


def test_non_json_error_body_gets_readable_message() -> None:
    """An HTML or empty error body becomes a message naming the status and the body's text."""
    error = make_adapter().map_error(reply(b"<html>\n  <body>502 Bad Gateway</body>\n</html>", 502))
    assert error.message == "the provider returned HTTP 502: <html> <body>502 Bad Gateway</body> </html>"
    assert make_adapter().map_error(reply(b"", 503)).message == "the provider returned HTTP 503"
