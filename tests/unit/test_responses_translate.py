"""Responses API translation on JSON fixtures, without sockets: request -> Chat Completions body,
chat completion -> output items, chat stream frames -> Responses events, and the in-band error."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from sluicegate.api.openai.responses import ResponsesEgress, ResponsesStream
from sluicegate.api.openai.responses_store import ResponseStore, Turn
from sluicegate.api.openai.responses_translate import (
    build_response,
    completion_output,
    output_message,
    parse_request,
    status_of,
)
from sluicegate.errors import InvalidRequestError, UpstreamProtocolError
from sluicegate.pipeline.validate import chat_request
from sluicegate.types import ChatRequest, ChatResponse, Usage
from sluicegate.upstream.sse import SSEDecoder

FIXTURES = Path(__file__).parent / "fixtures" / "responses"
DONE = b"data: [DONE]\n\n"


def load(name: str) -> Any:
    return orjson.loads((FIXTURES / name).read_bytes())


def without_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Output items minus their random `id`s, to compare with a fixture."""
    return [{k: v for k, v in item.items() if k != "id"} for item in items]


def frames_of(name: str) -> list[bytes]:
    """A chat SSE transcript split into the one-event frames a stream translator hands the egress."""
    events = SSEDecoder().feed((FIXTURES / name).read_bytes())
    return [b"data: " + event.data + b"\n\n" for event in events]


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return (
        b"data: " + orjson.dumps({"object": "chat.completion.chunk", "choices": choices, **extra}) + b"\n\n"
    )


def parse_events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in raw.split(b"\n\n"):
        if not block:
            continue
        name_line, data_line = block.split(b"\n")
        assert name_line.startswith(b"event: ") and data_line.startswith(b"data: ")
        out.append((name_line[7:].decode(), orjson.loads(data_line[6:])))
    return out


def encoder(body: dict[str, Any] | None = None, store: ResponseStore | None = None) -> ResponsesStream:
    plan = parse_request(body or {"model": "m", "input": "hi", "stream": True})
    return ResponsesStream(ResponsesEgress(plan, store, None, "key-1"))


def refused(body: dict[str, Any]) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        parse_request(body)
    return caught.value


# ---------------------------------------------------------------------------------- request


def test_full_request_translates_to_the_fixture_chat_body() -> None:
    """Every supported field and input item maps to the Chat Completions body in the fixture."""
    fixture = load("request_full.json")
    original = copy.deepcopy(fixture["request"])
    plan = parse_request(fixture["request"])
    assert plan.chat_body() == fixture["chat"]
    assert fixture["request"] == original  # the caller's body is not modified
    assert (plan.stream, plan.store, plan.previous_response_id) == (True, False, None)
    assert plan.echo["metadata"] == {"ticket": "42"} and plan.echo["instructions"] == "You are a weather bot."


def test_chat_body_is_valid_for_the_chat_pipeline() -> None:
    """The translated body passes the chat validator, which strips the gateway's own controls."""
    plan = parse_request(load("request_full.json")["request"])
    request = chat_request(plan.chat_body())
    assert request.stream is True and request.model == "gpt-fake"
    assert "sluicegate" not in request.body


def test_history_goes_between_instructions_and_this_turn() -> None:
    """A stored conversation is inserted after the system message and before the new input."""
    plan = parse_request({"model": "m", "instructions": "sys", "input": "now", "max_output_tokens": 9})
    history = [{"role": "user", "content": "before"}, {"role": "assistant", "content": "ok"}]
    body = plan.chat_body(history, "max_completion_tokens")
    assert [m["content"] for m in body["messages"]] == ["sys", "before", "ok", "now"]
    assert body["max_completion_tokens"] == 9 and "max_tokens" not in body
    assert plan.input_messages == [{"role": "user", "content": "now"}]


def test_absent_fields_are_not_sent_as_null() -> None:
    """Nulls from the caller (and the SDK's null `parameters`/`strict`) never reach the chat body."""
    plan = parse_request(
        {
            "model": "m",
            "input": "hi",
            "temperature": None,
            "instructions": None,
            "tools": [
                {"type": "function", "name": "f", "description": None, "parameters": None, "strict": None}
            ],
        }
    )
    assert plan.chat_body() == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
    }


def test_function_call_after_a_user_message_starts_an_assistant_turn() -> None:
    """A function_call not preceded by assistant text becomes its own assistant message without content."""
    plan = parse_request(
        {
            "model": "m",
            "input": [
                {"role": "user", "content": "hi"},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "done"},
            ],
        }
    )
    assert plan.input_messages == [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
    ]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "input": "hi", "frobnicate": 1}, "frobnicate"),
        ({"model": "m", "input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"model": "m", "input": "hi", "tools": [{"type": "function"}]}, "tools[0].name"),
        ({"model": "m", "input": "hi", "tool_choice": {"type": "file_search"}}, "tool_choice.type"),
        ({"model": "m", "input": "hi", "conversation": "conv_1"}, "conversation"),
        ({"model": "m", "input": "hi", "prompt": {"id": "p"}}, "prompt"),
        ({"model": "m", "input": "hi", "background": True}, "background"),
        ({"model": "m", "input": "hi", "top_logprobs": 3}, "top_logprobs"),
        ({"model": "m", "input": "hi", "truncation": "sometimes"}, "truncation"),
        ({"model": "m", "input": "hi", "max_output_tokens": True}, "max_output_tokens"),
        ({"model": "m", "input": "hi", "temperature": "hot"}, "temperature"),
        ({"model": "m", "input": "hi", "metadata": {"n": 1}}, "metadata.n"),
        (
            {"model": "m", "input": "hi", "text": {"format": {"type": "json_schema", "schema": {}}}},
            "text.format.name",
        ),
        ({"model": "m", "input": "hi", "text": {"format": {"type": "xml"}}}, "text.format.type"),
        ({"input": "hi"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": []}, "input"),
        ({"model": "m", "input": 5}, "input"),
        ({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        ({"model": "m", "input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
        (
            {"model": "m", "input": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "input[0].content[0].type",
        ),
        (
            {
                "model": "m",
                "input": [{"role": "system", "content": [{"type": "input_image", "image_url": "x"}]}],
            },
            "input[0].content[0].type",
        ),
        (
            {"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].image_url",
        ),
        (
            {"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]},
            "input[0].call_id",
        ),
        (
            {"model": "m", "input": [{"type": "function_call_output", "call_id": "c", "output": 3}]},
            "input[0].output",
        ),
    ],
)
def test_bad_or_unsupported_requests_get_a_400_naming_the_field(body: dict[str, Any], param: str) -> None:
    """Unknown, unsupported and mistyped fields are refused with the offending field as `param`."""
    error = refused(body)
    assert error.status == 400
    assert error.param == param
    assert param.split("[")[0].split(".")[0] in error.message


# --------------------------------------------------------------------------- response object


def test_completion_becomes_output_items_usage_and_the_stored_message() -> None:
    """Text, citations and tool calls of a chat.completion become message and function_call items."""
    fixture = load("completion_text_and_calls.json")
    output, finish = completion_output(fixture["completion"])
    assert without_ids(output) == fixture["output"]
    assert output[0]["id"].startswith("msg_") and output[1]["id"].startswith("fc_")
    assert finish == "tool_calls" and status_of(finish) == ("completed", None)
    usage = Usage.from_openai(fixture["completion"]["usage"])
    plan = parse_request({"model": "alias", "input": "hi"})
    response = build_response(plan, "resp_1", 100, "completed", output, usage)
    assert response["usage"] == fixture["usage"]
    assert response["model"] == "alias" and response["object"] == "response"
    assert output_message(output) == fixture["assistant_message"]


def test_empty_and_refusal_replies_still_make_a_message() -> None:
    """An empty reply is one empty output_text; a refusal is a refusal part."""
    empty, _ = completion_output({"choices": [{"message": {"content": None}, "finish_reason": "stop"}]})
    assert without_ids(empty)[0]["content"] == [{"type": "output_text", "text": "", "annotations": []}]
    refusal, finish = completion_output(
        {
            "choices": [
                {"message": {"content": None, "refusal": "I can't."}, "finish_reason": "content_filter"}
            ]
        }
    )
    assert refusal[0]["content"] == [{"type": "refusal", "refusal": "I can't."}]
    assert status_of(finish) == ("incomplete", "content_filter")
    assert status_of("length") == ("incomplete", "max_output_tokens")


def test_non_streamed_egress_stores_the_turn() -> None:
    """`complete` renders the Response and stores this turn's input plus the assistant's reply."""
    store = ResponseStore(60, 10)
    plan = parse_request({"model": "m", "instructions": "sys", "input": "hi", "max_output_tokens": 2})
    egress = ResponsesEgress(plan, store, None, "key-1")
    completion = {"choices": [{"message": {"content": "Hel"}, "finish_reason": "length"}]}
    body = orjson.loads(
        egress.complete(ChatRequest({}, "m"), ChatResponse(orjson.dumps(completion), Usage(3, 2)))
    )
    assert body["status"] == "incomplete" and body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["output"][0]["status"] == "incomplete"
    stored = store.get(egress.response_id, "key-1")
    assert stored is not None and orjson.loads(stored.body) == body
    # Instructions are not carried to the next turn (OpenAI's rule); the reply is.
    assert stored.turn.conversation() == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hel"},
    ]


def test_non_streamed_egress_rejects_a_non_json_reply() -> None:
    """A reply that is not JSON is the provider's protocol error, not a crash."""
    egress = ResponsesEgress(parse_request({"model": "m", "input": "hi"}), None, None, None)
    with pytest.raises(UpstreamProtocolError):
        egress.complete(ChatRequest({}, "m"), ChatResponse(b"<html>"))


# ---------------------------------------------------------------------------------- streams


def test_stream_of_text_then_calls_gives_the_responses_event_sequence() -> None:
    """Text then two tool calls (one fragmented), fed frame by frame, give OpenAI's numbered events."""
    store = ResponseStore(60, 10)
    stream = encoder(store=store)
    raw = b"".join(stream.encode([frame]) for frame in frames_of("stream_text_then_calls.sse"))
    events = parse_events(raw)
    assert all(name == data["type"] for name, data in events)
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    assert [name.removeprefix("response.") for name, _ in events] == [
        "created",
        "in_progress",
        "output_item.added",
        "content_part.added",
        "output_text.delta",
        "output_text.delta",
        "output_text.done",
        "content_part.done",
        "output_item.done",
        "output_item.added",
        "function_call_arguments.delta",
        "function_call_arguments.delta",
        "function_call_arguments.done",
        "output_item.done",
        "output_item.added",
        "function_call_arguments.delta",
        "function_call_arguments.done",
        "output_item.done",
        "completed",
    ]
    text_done = events[6][1]
    assert text_done["text"] == "Let me check." and text_done["output_index"] == 0
    first_done = events[12][1]
    assert first_done["arguments"] == '{"city":"Paris"}' and first_done["output_index"] == 1
    assert events[14][1]["item"]["call_id"] == "call_b" and events[14][1]["output_index"] == 2
    final = events[-1][1]["response"]
    assert final["status"] == "completed" and final["completed_at"] >= final["created_at"]
    expected = load("completion_text_and_calls.json")
    assert [item["type"] for item in final["output"]] == ["message", "function_call", "function_call"]
    assert final["usage"]["input_tokens_details"]["cached_tokens"] == 10
    assert final["usage"]["total_tokens"] == 42
    stored = store.get(final["id"], "key-1")
    assert stored is not None and stored.turn.messages[-1] == expected["assistant_message"]


def test_stream_fed_in_one_batch_equals_frame_by_frame() -> None:
    """Batching frames (the first read often holds several) changes nothing but the ids."""
    frames = frames_of("stream_text_then_calls.sse")
    one = parse_events(encoder().encode(frames))
    stream = encoder()
    many = parse_events(b"".join(stream.encode([f]) for f in frames))
    assert [name for name, _ in one] == [name for name, _ in many]


def test_stream_length_ends_incomplete_and_empty_stream_has_a_message() -> None:
    """finish_reason length ends with response.incomplete; a reply with no content still has one message."""
    events = parse_events(encoder().encode([chunk({"content": "Par"}), chunk({}, "length"), DONE]))
    assert events[-1][0] == "response.incomplete"
    assert events[-1][1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert events[-2][1]["item"]["status"] == "incomplete"
    empty = parse_events(
        encoder().encode([chunk({"role": "assistant", "content": ""}), chunk({}, "stop"), DONE])
    )
    assert [name.removeprefix("response.") for name, _ in empty][2:] == [
        "output_item.added",
        "content_part.added",
        "output_text.done",
        "content_part.done",
        "output_item.done",
        "completed",
    ]


def test_stream_refusal_and_text_are_separate_parts() -> None:
    """Refusal deltas open a refusal part, closing the text part before it."""
    events = parse_events(
        encoder().encode([chunk({"content": "Hmm. "}), chunk({"refusal": "No."}), chunk({}, "stop"), DONE])
    )
    names = [name for name, _ in events]
    assert "response.refusal.delta" in names and "response.refusal.done" in names
    final = events[-1][1]["response"]["output"][0]["content"]
    assert final == [
        {"type": "output_text", "text": "Hmm. ", "annotations": []},
        {"type": "refusal", "refusal": "No."},
    ]


def test_stream_ignores_frames_after_done_and_other_choices() -> None:
    """Nothing follows the terminal event; choices other than 0 do not exist in the Responses API."""
    stream = encoder()
    out = stream.encode(
        [chunk({"content": "a"}), chunk(None, choices=[{"index": 1, "delta": {"content": "x"}}])]
    )
    out += stream.encode([DONE, chunk({"content": "late"})])
    events = parse_events(out)
    assert events[-1][0] == "response.completed"
    assert events[-1][1]["response"]["output"][0]["content"][0]["text"] == "a"


def test_stream_error_event_has_both_shapes() -> None:
    """The in-band error has the Responses error-event fields and SPEC's `error` object, in sequence."""
    stream = encoder()
    events = parse_events(stream.encode([chunk({"content": "a"})]))
    tail = parse_events(stream.error(UpstreamProtocolError("the provider ended the stream early")))
    assert len(tail) == 1
    name, data = tail[0]
    assert name == "error" and data["type"] == "error"
    assert data["sequence_number"] == len(events)
    assert (data["code"], data["message"], data["param"]) == (
        "upstream_bad_response",
        "the provider ended the stream early",
        None,
    )
    assert data["error"] == {
        "message": "the provider ended the stream early",
        "type": "api_error",
        "param": None,
        "code": "upstream_bad_response",
    }


def test_stream_without_store_keeps_nothing() -> None:
    """`store: false` streams never write to the store."""
    store = ResponseStore(60, 10)
    plan = parse_request({"model": "m", "input": "hi", "stream": True, "store": False})
    stream = ResponsesStream(ResponsesEgress(plan, None if not plan.store else store, None, None))
    stream.encode([chunk({"content": "a"}), chunk({}, "stop"), DONE])
    assert len(store) == 0


def test_continued_turn_links_to_its_parent() -> None:
    """A continuation stores only its own messages, linked to the previous turn."""
    store = ResponseStore(60, 10)
    parent = Turn(({"role": "user", "content": "one"}, {"role": "assistant", "content": "1"}))
    plan = parse_request({"model": "m", "input": "two"})
    egress = ResponsesEgress(plan, store, parent, None)
    egress.complete(
        ChatRequest({}, "m"), ChatResponse(orjson.dumps({"choices": [{"message": {"content": "2"}}]}))
    )
    stored = store.get(egress.response_id, None)
    assert stored is not None and stored.turn.parent is parent
    assert [m["content"] for m in stored.turn.conversation()] == ["one", "1", "two", "2"]
