"""The Anthropic Messages surface's pure translation (api/anthropic/translate.py) on recorded fixtures:
Anthropic requests to the OpenAI dialect, chat completions and chunk streams back to Anthropic shapes."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import orjson
import pytest

from sluicegate.api.anthropic.translate import (
    Backend,
    MessagesStream,
    estimate_input_tokens,
    to_chat_request,
    to_message,
    usage_fields,
)
from sluicegate.config.schema import ModelEntry
from sluicegate.errors import InvalidRequestError, UpstreamProtocolError, UpstreamStatusError
from sluicegate.providers.anthropic import AnthropicAdapter
from sluicegate.types import ChatRequest, Usage
from sluicegate.upstream.sse import SSEDecoder

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic_ingress"
CLAUDE_FIXTURES = Path(__file__).parents[1] / "providers" / "fixtures" / "anthropic"
PLAIN = Backend()
CLAUDE = Backend(keep_cache_control=True)
USER = [{"role": "user", "content": "Hi"}]


def load(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 10, "messages": USER, **fields}


def sse_events(raw: bytes) -> list[list[Any]]:
    """[event name, data JSON] per event; also checks each event is `event:` + one `data:` line."""
    out: list[list[Any]] = []
    for block in raw.split(b"\n\n")[:-1]:
        lines = block.split(b"\n")
        assert len(lines) == 2 and lines[0].startswith(b"event: ") and lines[1].startswith(b"data: ")
        name, data = lines[0][7:].decode(), orjson.loads(lines[1][6:])
        assert data["type"] == name
        out.append([name, data])
    assert raw.endswith(b"\n\n")
    return out


def openai_frames(raw: bytes) -> list[bytes]:
    """An OpenAI SSE transcript as the frames an adapter hands to the egress (`data: ...\\n\\n` each)."""
    return [event.data.join((b"data: ", b"\n\n")) for event in SSEDecoder().feed(raw)]


def encode_all(frames: list[bytes], model: str = "my-gpt", batch: int = 1) -> bytes:
    stream = MessagesStream(model)
    return b"".join(stream.encode(frames[i : i + batch]) for i in range(0, len(frames), batch))


# --- requests -----------------------------------------------------------------------------------


def test_claude_code_request_becomes_openai_chat() -> None:
    """A Claude-Code-shaped request (system blocks, tools, thinking, tool round trip) maps per §3.5."""
    case = load("request_claude_code.json")
    original = copy.deepcopy(case["anthropic"])
    request = to_chat_request(case["anthropic"], PLAIN)
    assert request.body == case["openai"]
    assert (request.model, request.stream, request.include_usage) == ("gpt-4o", True, True)
    assert case["anthropic"] == original  # the caller's body is not modified


def test_claude_backend_keeps_cache_control_through_the_anthropic_adapter() -> None:
    """Behind Claude, cache_control on system and user text survives the adapter's way back to Anthropic."""
    case = load("request_claude_code.json")
    request = to_chat_request(copy.deepcopy(case["anthropic"]), CLAUDE)
    changes = case["openai_claude_backend_changes"]
    assert request.body["messages"][0] == changes["system"]
    assert request.body["messages"][-1] == changes["last_user"]
    adapter = AnthropicAdapter(
        ModelEntry(name="c", provider="anthropic", model="claude-sonnet-4-5", api_key="k")
    )
    sent = adapter.translate_body(request)
    assert sent["system"] == case["anthropic"]["system"]
    assert sent["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_01", "content": "hello"},
        {"type": "text", "text": "Summarise.", "cache_control": {"type": "ephemeral"}},
    ]
    assert sent["messages"][1]["content"][-1] == {
        "type": "tool_use",
        "id": "toolu_01",
        "name": "Read",
        "input": {"path": "a.txt"},
    }


def test_user_blocks_images_documents_and_tool_results() -> None:
    """Images, text documents, tool results (text, images, is_error), thinking-only turns map as designed."""
    case = load("request_user_blocks.json")
    request = to_chat_request(case["anthropic"], PLAIN)
    assert request.body == case["openai"]
    assert (request.stream, request.include_usage) == (False, False)


def test_openai_backend_gets_max_completion_tokens() -> None:
    """The token limit goes in the backend's field: max_completion_tokens for OpenAI and Azure groups."""
    sent = to_chat_request(body(max_tokens=77), Backend(token_field="max_completion_tokens")).body
    assert sent["max_completion_tokens"] == 77 and "max_tokens" not in sent


@pytest.mark.parametrize(
    ("choice", "openai_choice", "parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
        ({"type": "any"}, "required", None),
        ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}}, None),
        ({"type": "none"}, "none", None),
    ],
)
def test_tool_choice_mapping(choice: dict[str, Any], openai_choice: Any, parallel: bool | None) -> None:
    """auto/any/tool/none become auto/required/named/none; disable_parallel_tool_use, parallel_tool_calls."""
    tools = [{"name": "f", "input_schema": {"type": "object"}}]
    sent = to_chat_request(body(tools=tools, tool_choice=choice), PLAIN).body
    assert sent["tool_choice"] == openai_choice
    assert sent.get("parallel_tool_calls") is parallel


def test_tool_choice_without_tools_is_not_sent() -> None:
    """OpenAI refuses tool_choice without tools, so it only travels with them."""
    sent = to_chat_request(body(tool_choice={"type": "auto"}), PLAIN).body
    assert "tool_choice" not in sent and "tools" not in sent


def test_output_config_json_schema_becomes_response_format() -> None:
    """Structured output (`output_config.format`) becomes OpenAI's json_schema response_format."""
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    sent = to_chat_request(
        body(output_config={"format": {"type": "json_schema", "schema": schema}}), PLAIN
    ).body
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema},
    }


@pytest.mark.parametrize(
    ("fields", "message", "param"),
    [
        ({"max_tokens": None}, "max_tokens: Field required", "max_tokens"),
        ({"max_tokens": True}, "max_tokens: Input should be a valid integer", "max_tokens"),
        ({"max_tokens": 0}, "max_tokens: Input should be greater than or equal to 1", "max_tokens"),
        ({"model": 3}, "model: Input should be a valid string", "model"),
        ({"messages": []}, "messages: at least one message is required", "messages"),
        ({"messages": [{"role": "user"}]}, "messages.0.content: Field required", "messages.0.content"),
        (
            {"messages": [{"role": "user", "content": 5}]},
            "messages.0.content: Input should be a valid list",
            None,
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages.0.content.0.text: Field required",
            None,
        ),
        ({"system": 5}, "system: Input should be a valid string", "system"),
        ({"temperature": "hot"}, "temperature: Input should be a valid number", "temperature"),
        ({"top_k": 1.5}, "top_k: Input should be a valid integer", "top_k"),
        ({"stream": "yes"}, "stream: Input should be a valid boolean", "stream"),
        ({"stop_sequences": "END"}, "stop_sequences: Input should be a valid list of strings", None),
        ({"metadata": {"user_id": 5}}, "metadata.user_id: Input should be a valid string", None),
        ({"tools": [{"name": "f"}]}, "tools.0.input_schema: Field required", None),
        ({"tools": [{"input_schema": {}}]}, "tools.0.name: Field required", None),
        ({"tool_choice": {"type": "some"}}, "tool_choice: Input tag 'some'", "tool_choice.type"),
        ({"tool_choice": {"type": "tool"}}, "tool_choice.name: Field required", None),
    ],
)
def test_invalid_requests_are_refused_in_anthropic_words(
    fields: dict[str, Any], message: str, param: str | None
) -> None:
    """Missing or mistyped fields raise a 400 whose message uses Anthropic's `<path>: ...` wording."""
    request = {k: v for k, v in body(**fields).items() if v is not None}
    with pytest.raises(InvalidRequestError) as info:
        to_chat_request(request, PLAIN)
    assert info.value.message.startswith(message)
    assert info.value.http_status == 400
    if param is not None:
        assert info.value.param == param


@pytest.mark.parametrize(
    ("messages", "tools", "named"),
    [
        (USER, [{"type": "web_search_20250305", "name": "web_search"}], "web_search_20250305"),
        (
            [
                {
                    "role": "user",
                    "content": [{"type": "search_result", "source": "s", "title": "t", "content": []}],
                }
            ],
            None,
            "search_result",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [{"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}],
                }
            ],
            None,
            "PDF",
        ),
        (
            [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}],
            None,
            "file id",
        ),
    ],
)
def test_untranslatable_features_are_clear_400s(messages: Any, tools: Any, named: str) -> None:
    """Server tools, server-side blocks, PDFs and file ids are refused with a 400 that names them."""
    fields: dict[str, Any] = {"messages": messages}
    if tools is not None:
        fields["tools"] = tools
    with pytest.raises(InvalidRequestError) as info:
        to_chat_request(body(**fields), PLAIN)
    assert named in info.value.message


# --- replies ------------------------------------------------------------------------------------


def test_completion_with_text_and_tool_calls_becomes_a_message() -> None:
    """Text then tool calls become text and tool_use blocks; usage excludes cached tokens from input."""
    case = load("completion_text_tools.json")
    assert to_message(case["openai"], "my-gpt", None) == case["anthropic"]


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
        (None, "end_turn"),
    ],
)
def test_finish_reasons_map_to_stop_reasons(finish: str | None, stop_reason: str) -> None:
    """Each OpenAI finish_reason maps to its Anthropic stop_reason (reference §8)."""
    completion = {"id": "x", "choices": [{"index": 0, "message": {"content": "a"}, "finish_reason": finish}]}
    assert to_message(completion, "m", None)["stop_reason"] == stop_reason


def test_tool_only_reply_has_no_empty_text_block() -> None:
    """A reply with only tool calls (content null) has no text block, like the real API."""
    completion = {
        "id": "x",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
    }
    assert [b["type"] for b in to_message(completion, "m", None)["content"]] == ["tool_use"]


def test_invalid_tool_arguments_are_kept_not_dropped() -> None:
    """Arguments that are not a JSON object survive under `_raw_arguments` for the client to report."""
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{broken"}}
    completion = {
        "choices": [{"message": {"content": None, "tool_calls": [call]}, "finish_reason": "tool_calls"}]
    }
    assert to_message(completion, "m", None)["content"][0]["input"] == {"_raw_arguments": "{broken"}


def test_usage_fields_exclude_cache_reads_and_writes_from_input() -> None:
    """Our prompt_tokens (cache reads and writes included) becomes Anthropic's three input counts."""
    usage = Usage(prompt_tokens=100, completion_tokens=7, cached_tokens=30, cache_write_tokens=20)
    assert usage_fields(usage) == {
        "input_tokens": 50,
        "cache_creation_input_tokens": 20,
        "cache_read_input_tokens": 30,
        "output_tokens": 7,
    }
    assert usage_fields(None)["output_tokens"] == 0


# --- streams ------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 3, 100])
def test_openai_stream_becomes_the_exact_anthropic_event_sequence(batch: int) -> None:
    """Text then two tool calls stream as blocks 0, 1, 2 with message_delta carrying stop reason and usage."""
    frames = openai_frames((FIXTURES / "stream_openai_tools.txt").read_bytes())
    assert sse_events(encode_all(frames, batch=batch)) == load("stream_openai_tools.expected.json")


def test_claude_stream_survives_the_double_translation() -> None:
    """A Claude stream through the Anthropic adapter and back keeps its text, tool ids, inputs and usage."""
    adapter = AnthropicAdapter(ModelEntry(name="c", provider="anthropic", model="claude", api_key="k"))
    translator = adapter.stream_translator(ChatRequest(body={}, model="c", stream=True, include_usage=True))
    frames: list[bytes] = []
    for event in SSEDecoder().feed((CLAUDE_FIXTURES / "stream_tools.txt").read_bytes()):
        frames.extend(translator.feed(event))
    events = sse_events(encode_all(frames, model="c"))
    assert events[0][1]["message"]["id"] == "msg_01Tools"
    starts = [data["content_block"] for name, data in events if name == "content_block_start"]
    assert starts == [
        {"type": "text", "text": ""},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}},
        {"type": "tool_use", "id": "toolu_02", "name": "get_weather", "input": {}},
    ]
    inputs: dict[int, str] = {}
    for name, data in events:
        if name == "content_block_delta" and data["delta"]["type"] == "input_json_delta":
            inputs[data["index"]] = inputs.get(data["index"], "") + data["delta"]["partial_json"]
    assert {i: orjson.loads(s) for i, s in inputs.items()} == {1: {"city": "Paris"}, 2: {"city": "Rome"}}
    final = events[-2][1]
    assert final["delta"]["stop_reason"] == "tool_use"
    assert final["usage"] == {
        "input_tokens": 400,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": 89,
    }


def test_tool_only_stream_opens_with_the_tool_block() -> None:
    """A tool-only stream (role chunk with null content) starts its tool_use block at index 0."""
    chunks = [
        {"id": "c", "choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}]},
        {
            "id": "c",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "k",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{}"},
                            }
                        ]
                    },
                }
            ],
        },
        {"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    frames = [b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]
    names = [(n, d.get("index")) for n, d in sse_events(encode_all(frames))]
    assert names[2:] == [
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("message_delta", None),
        ("message_stop", None),
    ]


def test_text_after_a_tool_call_opens_a_new_block() -> None:
    """Text arriving after a tool call closes the tool block and opens a new text block."""
    chunks: list[dict[str, Any]] = [
        {"tool_calls": [{"index": 0, "id": "k", "function": {"name": "f", "arguments": "{}"}}]},
        {"content": "done"},
    ]
    frames = [
        b"data: " + orjson.dumps({"id": "c", "choices": [{"index": 0, "delta": d}]}) + b"\n\n" for d in chunks
    ]
    events = sse_events(encode_all([*frames, b"data: [DONE]\n\n"]))
    starts = [(d["index"], d["content_block"]["type"]) for n, d in events if n == "content_block_start"]
    assert starts == [(0, "tool_use"), (1, "text")]
    assert [d["index"] for n, d in events if n == "content_block_stop"] == [0, 1]


def test_error_after_first_byte_is_an_error_event() -> None:
    """A failure mid-stream becomes one `event: error` with Anthropic's body for its status."""
    stream = MessagesStream("m")
    stream.encode([b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'])
    error = UpstreamStatusError("slow down", upstream_status=429)
    assert sse_events(stream.error(error)) == [
        ["error", {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}]
    ]
    cut = UpstreamProtocolError("the provider ended the stream before it was complete")
    assert sse_events(stream.error(cut))[0][1]["error"]["type"] == "api_error"


def test_frames_after_done_are_ignored() -> None:
    """Nothing follows message_stop, even if an adapter sent more frames."""
    stream = MessagesStream("m")
    stream.encode([b"data: [DONE]\n\n"])
    assert stream.encode([b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"late"}}]}\n\n']) == b""


# --- count_tokens estimate --------------------------------------------------------------------------


def test_token_estimate_counts_text_tools_images_and_messages() -> None:
    """Estimate = characters/4 (text, tool inputs, tool JSON) + 3/message + 1600/image + 300 with tools."""
    tools = [{"name": "f", "input_schema": {"type": "object"}}]
    request = {
        "model": "m",
        "system": "abcd" * 5,
        "tools": tools,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "x" * 40},
                    {"type": "image", "source": {"type": "url", "url": "https://e/a.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "yz"}]},
        ],
    }
    chars = 20 + 40 + len("f") + len('{"a":1}') + 2 + len(orjson.dumps(tools))
    assert estimate_input_tokens(request) == math.ceil(chars / 4) + 3 * 3 + 1600 + 300
