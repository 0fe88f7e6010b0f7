"""Legacy completions without sockets: body validation, the prompt-to-chat translation and its refusals,
and the chat results turned back into `text_completion` objects and stream chunks."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sluicegate.config.schema import ModelEntry
from sluicegate.errors import InvalidRequestError, UpstreamTimeoutError
from sluicegate.pipeline.completions import (
    TEXT_COMPLETION,
    completion_request,
    text_completion,
    text_completion_chunk,
    to_chat_body,
)
from sluicegate.providers.base import DONE_FRAME, sse_frame
from sluicegate.providers.registry import make_adapter
from sluicegate.routing.deployment import Deployment
from sluicegate.routing.router import ModelGroup
from sluicegate.types import ChatRequest, ChatResponse


def claude_group(drop_params: bool = False) -> ModelGroup:
    entry = ModelEntry(
        name="claude", provider="anthropic", model="claude-x", api_key="sk-ant", drop_params=drop_params
    )
    deployment = Deployment("anthropic/claude-x", entry, make_adapter(entry), None, 10.0, 1.0)
    return ModelGroup("claude", [deployment], "round-robin")


# ------------------------------------------------------------------------------ validation


def test_valid_body_becomes_a_forwardable_request() -> None:
    """A valid legacy body is kept whole (minus gateway controls), with stream and usage flags read."""
    body = {
        "model": "m",
        "prompt": ["a", "b"],
        "logprobs": 2,
        "echo": True,
        "stream": True,
        "stream_options": {"include_usage": True},
        "sluicegate": {"tags": ["x"]},
    }
    request = completion_request(body)
    assert request.model == "m" and request.stream and request.include_usage
    assert "sluicegate" not in request.body and request.body["logprobs"] == 2


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"prompt": "x"}, "model"),
        ({"model": "", "prompt": "x"}, "model"),
        ({"model": "m"}, "prompt"),
        ({"model": "m", "prompt": None}, "prompt"),
        ({"model": "m", "prompt": []}, "prompt"),
        ({"model": "m", "prompt": [[1], "x"]}, "prompt"),
        ({"model": "m", "prompt": [1, -1]}, "prompt"),
        ({"model": "m", "prompt": [[]]}, "prompt"),
        ({"model": "m", "prompt": "x", "logprobs": True}, "logprobs"),
        ({"model": "m", "prompt": "x", "echo": 1}, "echo"),
        ({"model": "m", "prompt": "x", "best_of": 2.5}, "best_of"),
        ({"model": "m", "prompt": "x", "suffix": 3}, "suffix"),
        ({"model": "m", "prompt": "x", "stop": 3}, "stop"),
        ({"model": "m", "prompt": "x", "stream": 1}, "stream"),
        ({"model": "m", "prompt": "x", "temperature": "hot"}, "temperature"),
    ],
)
def test_bad_bodies_name_the_parameter(body: dict[str, Any], param: str) -> None:
    """Each malformed legacy body is a 400 whose `param` points at the culprit."""
    with pytest.raises(InvalidRequestError) as info:
        completion_request(body)
    assert info.value.http_status == 400 and info.value.param == param


# ------------------------------------------------------------------------ prompt -> chat


def test_prompt_becomes_one_user_message_and_sampling_is_kept() -> None:
    """The prompt is the single user message; chat-shaped parameters carry over, neutral legacy ones drop."""
    body = {
        "model": "claude",
        "prompt": ["Tell me a joke"],
        "max_tokens": 30,
        "temperature": 0.2,
        "stop": ["\n"],
        "stream": True,
        "echo": False,
        "best_of": 1,
        "suffix": "",
        "logprobs": None,
    }
    chat = to_chat_body(body, claude_group())
    assert chat == {
        "model": "claude",
        "messages": [{"role": "user", "content": "Tell me a joke"}],
        "max_tokens": 30,
        "temperature": 0.2,
        "stop": ["\n"],
        "stream": True,
    }
    assert body["prompt"] == ["Tell me a joke"]  # the caller's body is not modified


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"echo": True}, "echo"),
        ({"best_of": 4, "n": 2}, "best_of"),
        ({"suffix": "end"}, "suffix"),
        ({"logprobs": 0}, "logprobs"),
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"prompt": [1, 2]}, "prompt"),
        ({"prompt": [[1, 2]]}, "prompt"),
    ],
)
def test_what_chat_cannot_express_is_refused(extra: dict[str, Any], param: str) -> None:
    """Legacy-only parameters, several prompts and token prompts get a 400 naming them and the model."""
    with pytest.raises(InvalidRequestError) as info:
        to_chat_body({"model": "claude", "prompt": "x", **extra}, claude_group())
    assert info.value.param == param and "claude" in info.value.message


def test_drop_params_drops_legacy_only_parameters() -> None:
    """With `drop_params: true` on the model, echo/best_of/suffix/logprobs are dropped instead of refused."""
    body = {"model": "claude", "prompt": "x", "echo": True, "best_of": 3, "suffix": "s", "logprobs": 1}
    chat = to_chat_body(body, claude_group(drop_params=True))
    assert chat == {"model": "claude", "messages": [{"role": "user", "content": "x"}]}


# ------------------------------------------------------------------------ chat -> legacy


def test_chat_completion_becomes_a_text_completion() -> None:
    """Message text, finish reasons and usage map onto `text_completion` choices."""
    chat = {
        "id": "chatcmpl-abc",
        "object": "chat.completion",
        "created": 123,
        "model": "claude-x",
        "system_fingerprint": "fp_1",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "length"},
            {"index": 1, "message": {"role": "assistant", "content": None}, "finish_reason": "tool_calls"},
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    assert text_completion(chat) == {
        "id": "cmpl-abc",
        "object": "text_completion",
        "created": 123,
        "model": "claude-x",
        "system_fingerprint": "fp_1",
        "choices": [
            {"text": "Hi", "index": 0, "logprobs": None, "finish_reason": "length"},
            {"text": "", "index": 1, "logprobs": None, "finish_reason": "stop"},
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }


def test_egress_complete_renders_json() -> None:
    """The egress turns a chat response's bytes into a text_completion body."""
    chat = {
        "id": "msg_1",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": {"content": "ok"}}],
    }
    request = ChatRequest(body={}, model="m")
    out = orjson.loads(TEXT_COMPLETION.complete(request, ChatResponse(content=orjson.dumps(chat))))
    assert out["id"] == "msg_1" and out["object"] == "text_completion"
    assert out["choices"] == [{"text": "ok", "index": 0, "logprobs": None, "finish_reason": "stop"}]


def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 5,
        "model": "m",
        "choices": choices,
        **extra,
    }


def test_stream_chunks_become_text_chunks() -> None:
    """Content deltas become text, the finish chunk keeps its reason, tool deltas carry nothing."""
    text = text_completion_chunk(chunk([{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]))
    assert text == {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 5,
        "model": "m",
        "choices": [{"text": "Hel", "index": 0, "logprobs": None, "finish_reason": None}],
    }
    done = text_completion_chunk(chunk([{"index": 0, "delta": {}, "finish_reason": "length"}]))
    assert done is not None and done["choices"][0] == {
        "text": "",
        "index": 0,
        "logprobs": None,
        "finish_reason": "length",
    }
    assert (
        text_completion_chunk(chunk([{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]))
        is None
    )


def test_usage_chunk_is_kept() -> None:
    """The closing usage chunk (no choices) stays one; a `usage: null` on other chunks is dropped."""
    usage = {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    out = text_completion_chunk(chunk([], usage=usage))
    assert out is not None and out["choices"] == [] and out["usage"] == usage
    plain = text_completion_chunk(
        chunk([{"index": 0, "delta": {"content": "x"}, "finish_reason": None}], usage=None)
    )
    assert plain is not None and "usage" not in plain


def test_stream_encoder_converts_frames_and_keeps_done() -> None:
    """The encoder rewrites each chat frame, skips empty ones, and passes `[DONE]` through."""
    encoder = TEXT_COMPLETION.stream(ChatRequest(body={}, model="m", stream=True))
    frames = [
        sse_frame(orjson.dumps(chunk([{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]))),
        sse_frame(orjson.dumps(chunk([{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]))),
        DONE_FRAME,
    ]
    out = encoder.encode(frames)
    events = out.split(b"\n\n")
    assert len(events) == 3 and events[-1] == b""
    assert orjson.loads(events[0][len(b"data: ") :])["choices"][0]["text"] == "Hi"
    assert events[1] == b"data: [DONE]"


def test_stream_error_is_one_openai_error_event() -> None:
    """A failure after the first byte ends the legacy stream with one OpenAI error event and no [DONE]."""
    encoder = TEXT_COMPLETION.stream(ChatRequest(body={}, model="m", stream=True))
    out = encoder.error(UpstreamTimeoutError("too slow"))
    assert out.startswith(b"data: ") and out.endswith(b"\n\n") and b"[DONE]" not in out
    assert orjson.loads(out[6:])["error"]["code"] == "upstream_timeout"
