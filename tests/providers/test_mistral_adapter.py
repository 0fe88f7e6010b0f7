"""MistralAdapter: parameter mapping, tool-call id rewriting, reply and stream repairs, Mistral's errors.

The first tests are pure (no sockets); the last ones drive the shared conformance gateway with the
OpenAI SDK against FakeMistral, whose validation refuses what Mistral refuses.
"""

from __future__ import annotations

import json
import re
from typing import Any

import openai
import orjson
import pytest

from sluicegate.errors import InvalidRequestError, UpstreamProtocolError, UpstreamStatusError
from sluicegate.providers.base import EMBEDDINGS
from sluicegate.providers.mistral import MistralAdapter, ToolCallIds, translate_messages
from sluicegate.types import ChatRequest, EmbeddingsRequest, UpstreamReply
from sluicegate.upstream.sse import SSEDecoder
from tests.fakes import Reply, ToolCalls
from tests.fakes.fake_mistral import FakeMistral
from tests.fakes.server import FakeProviderServer

from ._helpers import adapter_factory, feed_stream, sent_body

USER = [{"role": "user", "content": "hi"}]
VALID_ID = re.compile(r"[A-Za-z0-9]{9}")


mistral = adapter_factory(
    MistralAdapter, name="m", provider="mistral", model="mistral-small-latest", api_key="k"
)


def sent(body: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return sent_body(mistral(**fields), ChatRequest(body=body, model="m", stream=bool(body.get("stream"))))


def history(first_id: str, second_id: str | None = None) -> list[dict[str, Any]]:
    """A conversation with one assistant turn calling tools and the tool answers."""
    ids = [first_id] + ([second_id] if second_id else [])
    calls = [
        {"id": call_id, "type": "function", "function": {"name": "f", "arguments": "{}"}} for call_id in ids
    ]
    return [
        USER[0],
        {"role": "assistant", "content": None, "tool_calls": calls},
        *({"role": "tool", "tool_call_id": call_id, "content": "ok"} for call_id in ids),
    ]


def run_stream(raw: bytes, *, include_usage: bool = False) -> tuple[Any, list[bytes]]:
    translator = mistral().stream_translator(
        ChatRequest(body={}, model="m", stream=True, include_usage=include_usage)
    )
    return translator, feed_stream(translator, SSEDecoder(), raw, finish=True)


def payloads(frames: list[bytes]) -> list[Any]:
    return [
        frame[len(b"data: ") : -2] if frame.endswith(b"[DONE]\n\n") else orjson.loads(frame[6:-2])
        for frame in frames
    ]


# ------------------------------------------------------------------------------------ requests


def test_request_goes_to_mistral_with_a_bearer_key() -> None:
    """The default base URL is api.mistral.ai/v1 and the key is a bearer token."""
    upstream = mistral().build_request(ChatRequest(body={"model": "m", "messages": USER}, model="m"))
    assert upstream.url == "https://api.mistral.ai/v1/chat/completions"
    assert upstream.headers["authorization"] == "Bearer k"
    assert orjson.loads(upstream.body) == {"model": "mistral-small-latest", "messages": USER}


def test_openai_parameters_are_renamed_to_mistrals() -> None:
    """seed -> random_seed, max_completion_tokens -> max_tokens, tool_choice required -> any."""
    body = {"model": "m", "messages": USER, "seed": 7, "max_completion_tokens": 50, "tool_choice": "required"}
    out = sent(body)
    assert (out["random_seed"], out["max_tokens"], out["tool_choice"]) == (7, 50, "any")
    assert "seed" not in out and "max_completion_tokens" not in out
    assert body["tool_choice"] == "required" and body["seed"] == 7  # the caller's body is not mutated


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    """With both token limits given, OpenAI's newer one is what Mistral receives."""
    assert (
        sent({"model": "m", "messages": USER, "max_tokens": 10, "max_completion_tokens": 20})["max_tokens"]
        == 20
    )


def test_other_tool_choices_pass_unchanged() -> None:
    """auto, none and a named function mean the same on Mistral."""
    named = {"type": "function", "function": {"name": "f"}}
    for choice in ("auto", "none", named):
        assert sent({"model": "m", "messages": USER, "tool_choice": choice})["tool_choice"] == choice


def test_bookkeeping_parameters_are_left_out_and_mistral_ones_kept() -> None:
    """user/store/metadata/stream_options never reach Mistral; safe_prompt and prompt_mode do."""
    body = {
        "model": "m",
        "messages": USER,
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "u1",
        "store": False,
        "metadata": {"a": "b"},
        "safe_prompt": True,
        "prompt_mode": "reasoning",
        "n": 2,
    }
    out = sent(body)
    assert set(out) == {"model", "messages", "stream", "safe_prompt", "prompt_mode", "n"}


def test_unsupported_parameter_is_a_400_naming_it() -> None:
    """logit_bias has no Mistral equivalent: a 400 with param logit_bias and a way out."""
    with pytest.raises(InvalidRequestError) as caught:
        sent({"model": "m", "messages": USER, "logit_bias": {"50256": -100}})
    assert caught.value.param == "logit_bias" and "drop_params" in caught.value.message


def test_unsupported_parameter_is_dropped_with_drop_params_or_when_neutral() -> None:
    """drop_params drops a refused parameter; a value asking for nothing (logprobs: false) always goes."""
    out = sent({"model": "m", "messages": USER, "logprobs": True, "top_logprobs": 3}, drop_params=True)
    assert "logprobs" not in out and "top_logprobs" not in out
    assert "logprobs" not in sent({"model": "m", "messages": USER, "logprobs": False})


def test_messages_lose_keys_mistral_refuses_and_developer_becomes_system() -> None:
    """User `name`, assistant `refusal`/`annotations` go; developer is system; a tool `name` stays."""
    messages = [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": "hi", "name": "ann"},
        {"role": "assistant", "content": "yo", "refusal": None, "annotations": []},
        {"role": "user", "content": "weather?"},
    ]
    out = sent({"model": "m", "messages": messages})["messages"]
    assert out == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"},
        {"role": "user", "content": "weather?"},
    ]
    tool = translate_messages([{"role": "tool", "tool_call_id": "abcDEF123", "content": "x", "name": "f"}])
    assert tool[0]["name"] == "f"


# ------------------------------------------------------------------------------- tool-call ids


def test_foreign_tool_call_ids_are_rewritten_consistently() -> None:
    """An OpenAI `call_...` id becomes one 9-alphanumeric id, the same in the call and its answer."""
    out = translate_messages(history("call_abc123XYZ456def789ghi0"))
    new_id = out[1]["tool_calls"][0]["id"]
    assert VALID_ID.fullmatch(new_id) and out[2]["tool_call_id"] == new_id


def test_rewriting_is_deterministic_across_requests() -> None:
    """Re-sending the same history (next turn) maps each id the same way."""
    first = translate_messages(history("toolu_01A09q90qw90lq917835lq9"))
    again = translate_messages(history("toolu_01A09q90qw90lq917835lq9"))
    assert first[1]["tool_calls"][0]["id"] == again[1]["tool_calls"][0]["id"]


def test_distinct_ids_stay_distinct_and_valid_ids_are_kept() -> None:
    """Two foreign ids get two different ids; an id Mistral issued (9 alphanumerics) is unchanged."""
    out = translate_messages(history("call_1", "call_2"))
    ids = [call["id"] for call in out[1]["tool_calls"]]
    assert len(set(ids)) == 2 and [out[2]["tool_call_id"], out[3]["tool_call_id"]] == ids
    kept = translate_messages(history("D681PevKs"))
    assert kept[1]["tool_calls"][0]["id"] == "D681PevKs" and kept[2]["tool_call_id"] == "D681PevKs"


def test_a_rewritten_id_never_takes_an_id_already_in_the_request() -> None:
    """If the hash of a foreign id equals a valid id present in the request, another id is chosen."""
    taken = ToolCallIds(set())("call_x")  # what call_x maps to with nothing in the way
    out = translate_messages([*history(taken), *history("call_x")[1:]])
    assert out[1]["tool_calls"][0]["id"] == taken
    moved = out[3]["tool_calls"][0]["id"]
    assert moved != taken and VALID_ID.fullmatch(moved) and out[4]["tool_call_id"] == moved


def test_caller_messages_are_not_mutated() -> None:
    """Rewriting copies the messages it changes; the caller's history is left as it was."""
    messages = history("call_1")
    before = json.dumps(messages)
    translate_messages(messages)
    assert json.dumps(messages) == before


# ---------------------------------------------------------------------------------- responses


def reply_body(message: dict[str, Any], finish: str) -> dict[str, Any]:
    return {
        "id": "r1",
        "object": "chat.completion",
        "created": 1,
        "model": "mistral-small-latest",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }


def parse(body: dict[str, Any]) -> Any:
    return mistral().parse_response(
        ChatRequest(body={}, model="m"), UpstreamReply(200, {}, orjson.dumps(body))
    )


def test_plain_reply_passes_byte_for_byte() -> None:
    """A reply that needs no repair is sent on as Mistral sent it, with its usage read."""
    raw = orjson.dumps(reply_body({"role": "assistant", "content": "Paris", "tool_calls": None}, "stop"))
    response = mistral().parse_response(ChatRequest(body={}, model="m"), UpstreamReply(200, {}, raw))
    assert response.content == raw and response.usage.prompt_tokens == 5


def test_model_length_becomes_length() -> None:
    """Mistral's model_length stop reason reaches the caller as length."""
    response = parse(reply_body({"role": "assistant", "content": "Par"}, "model_length"))
    assert response.finish_reason == "length"
    assert orjson.loads(response.content)["choices"][0]["finish_reason"] == "length"


def test_reply_tool_calls_get_their_type() -> None:
    """Tool calls without `type` get type function, ids untouched."""
    call = {"id": "D681PevKs", "function": {"name": "f", "arguments": "{}"}, "index": 0}
    response = parse(reply_body({"role": "assistant", "content": "", "tool_calls": [call]}, "tool_calls"))
    sent_call = orjson.loads(response.content)["choices"][0]["message"]["tool_calls"][0]
    assert sent_call["type"] == "function" and sent_call["id"] == "D681PevKs"


def test_chunked_content_becomes_text() -> None:
    """Content given as chunks (reasoning models) becomes its text; thinking chunks are left out."""
    content = [
        {"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]},
        {"type": "text", "text": "42"},
    ]
    response = parse(reply_body({"role": "assistant", "content": content}, "stop"))
    assert orjson.loads(response.content)["choices"][0]["message"]["content"] == "42"


def test_error_finish_reason_is_an_error() -> None:
    """finish_reason error means Mistral failed mid-generation: a provider error (502), not a reply."""
    with pytest.raises(UpstreamStatusError) as caught:
        parse(reply_body({"role": "assistant", "content": "Pa"}, "error"))
    assert caught.value.http_status == 502


# ------------------------------------------------------------------------------------- streams

_HEAD = b'data: {"id":"s","object":"chat.completion.chunk","created":1,"model":"ms","choices":'
ROLE = _HEAD + b'[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n'
TEXT = _HEAD + b'[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}\n\n'
LAST = (
    _HEAD + b'[{"index":0,"delta":{"content":""},"finish_reason":"model_length"}],'
    b'"usage":{"prompt_tokens":4,"completion_tokens":1,"total_tokens":5}}\n\n'
)
DONE = b"data: [DONE]\n\n"


def test_stream_usage_moves_to_its_own_chunk_when_asked() -> None:
    """With include_usage, usage leaves the last chunk and arrives alone (choices []) before [DONE]."""
    translator, frames = run_stream(ROLE + TEXT + LAST + DONE, include_usage=True)
    chunks = payloads(frames)
    assert frames[:2] == [ROLE, TEXT]  # untouched chunks go out byte for byte
    assert "usage" not in chunks[2] and chunks[2]["choices"][0]["finish_reason"] == "length"
    assert chunks[3]["choices"] == [] and chunks[3]["usage"]["prompt_tokens"] == 4 and chunks[3]["id"] == "s"
    assert chunks[4] == b"[DONE]" and translator.usage.completion_tokens == 1


def test_stream_usage_is_hidden_when_not_asked_but_still_billed() -> None:
    """Without include_usage no chunk carries usage, yet the translator has it for pricing."""
    translator, frames = run_stream(ROLE + TEXT + LAST + DONE)
    assert not any(isinstance(c, dict) and "usage" in c for c in payloads(frames))
    assert len(frames) == 4 and translator.usage.prompt_tokens == 4


def test_streamed_tool_calls_get_type_and_distinct_indexes() -> None:
    """Whole tool calls in one delta, both at index 0, become indexes 0 and 1 with type function."""
    calls = [
        {"id": "aaaaaaaa1", "function": {"name": "f", "arguments": '{"a":1}'}, "index": 0},
        {"id": "bbbbbbbb2", "function": {"name": "f", "arguments": '{"a":2}'}, "index": 0},
    ]
    chunk = {"id": "s", "choices": [{"index": 0, "delta": {"tool_calls": calls}, "finish_reason": None}]}
    raw = ROLE + b"data: " + orjson.dumps(chunk) + b"\n\n" + DONE
    _, frames = run_stream(raw)
    out = payloads(frames)[1]["choices"][0]["delta"]["tool_calls"]
    assert [(c["index"], c["type"], c["id"]) for c in out] == [
        (0, "function", "aaaaaaaa1"),
        (1, "function", "bbbbbbbb2"),
    ]


def test_stream_error_finish_reason_raises() -> None:
    """A chunk ending with finish_reason error ends the stream with an error, not a normal finish."""
    bad = LAST.replace(b"model_length", b"error")
    with pytest.raises(UpstreamStatusError):
        run_stream(ROLE + bad + DONE)


def test_stream_cut_before_done_is_an_error() -> None:
    """A stream without [DONE] was cut short: finish() raises."""
    with pytest.raises(UpstreamProtocolError, match="before it was complete"):
        run_stream(ROLE + TEXT)


# -------------------------------------------------------------------------------------- errors


def error_of(status: int, body: Any, headers: dict[str, str] | None = None) -> UpstreamStatusError:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    error = mistral().map_error(UpstreamReply(status, headers or {}, raw))
    assert isinstance(error, UpstreamStatusError)
    return error


def test_validation_error_detail_becomes_a_readable_message() -> None:
    """A 422 with pydantic detail names the bad field as message and param."""
    body = {
        "object": "error",
        "message": {
            "detail": [
                {
                    "type": "extra_forbidden",
                    "loc": ["body", "messages", 0, "user", "name"],
                    "msg": "Extra inputs are not permitted",
                }
            ]
        },
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    error = error_of(422, body)
    assert error.message == "messages[0].user.name: Extra inputs are not permitted"
    assert (error.http_status, error.param, error.error_type) == (
        422,
        "messages[0].user.name",
        "invalid_request_error",
    )


def test_json_encoded_detail_of_older_api_is_decoded() -> None:
    """An older body whose message is the detail JSON as a string reads the same."""
    detail = {
        "detail": [
            {
                "type": "extra_forbidden",
                "loc": ["body", "frequency_penalty"],
                "msg": "Extra inputs are not permitted",
            }
        ]
    }
    body = {
        "object": "error",
        "message": json.dumps(detail),
        "type": "internal_error_proxy",
        "param": None,
        "code": "1000",
    }
    error = error_of(422, body)
    assert error.message == "frequency_penalty: Extra inputs are not permitted" and error.code == "1000"


def test_gateway_bodies_and_retry_after_are_kept() -> None:
    """A bare {"message"} (401, 429 from Mistral's gateway) keeps its message; 429 keeps retry-after."""
    assert error_of(401, {"message": "Unauthorized", "request_id": "x"}).message == "Unauthorized"
    limited = error_of(429, {"message": "Requests rate limit exceeded"}, {"Retry-After": "3"})
    assert limited.http_status == 429 and limited.headers == {"retry-after": "3"}


def test_tool_call_id_error_and_non_json_bodies() -> None:
    """Mistral's 400 on a bad id keeps its text; a non-JSON 5xx body becomes the message of a 502."""
    message = "Tool call id was call_1 but must be a-z, A-Z, 0-9, with a length of 9."
    body = {
        "object": "error",
        "message": message,
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    assert error_of(400, body).message == message
    gateway = error_of(503, b"upstream connect error")
    assert gateway.http_status == 502 and gateway.message == "upstream connect error"


def test_embeddings_are_declared() -> None:
    """Mistral deployments say they can serve /v1/embeddings."""
    assert EMBEDDINGS in MistralAdapter.capabilities


# ------------------------------------------------------------------ through the gateway and SDK


def test_sdk_conversation_with_openai_ids_works_turn_after_turn(
    client: openai.OpenAI, fakes: dict[str, FakeProviderServer]
) -> None:
    """A history with OpenAI-style ids is accepted by Mistral, mapped the same way on every turn."""
    fake = fakes["mistral"]
    fake.reset()
    messages: list[Any] = [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_Paris0000001", "type": "function", "function": {"name": "w", "arguments": "{}"}},
                {"id": "call_Rome00000002", "type": "function", "function": {"name": "w", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_Paris0000001", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_Rome00000002", "content": "rain"},
    ]
    fake.enqueue(Reply("Sunny in Paris, rain in Rome."), Reply("ok"))
    first = client.chat.completions.create(model="conf-mistral", messages=messages)
    assert first.choices[0].message.content == "Sunny in Paris, rain in Rome."
    client.chat.completions.create(
        model="conf-mistral", messages=[*messages, {"role": "assistant", "content": "..."}, USER[0]]
    )
    turn1, turn2 = (r.json["messages"] for r in fake.requests)
    ids1 = [c["id"] for c in turn1[1]["tool_calls"]]
    assert (
        ids1
        == [c["id"] for c in turn2[1]["tool_calls"]]
        == [turn1[2]["tool_call_id"], turn1[3]["tool_call_id"]]
    )


def test_sdk_parameters_arrive_in_mistrals_names(
    client: openai.OpenAI, fakes: dict[str, FakeProviderServer]
) -> None:
    """seed, max_completion_tokens, tool_choice required and a developer message reach Mistral translated."""
    fake = fakes["mistral"]
    fake.reset()
    fake.enqueue(ToolCalls([("w", {"city": "Paris"})]))
    tool = {"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}
    reply = client.chat.completions.create(
        model="conf-mistral",
        messages=[{"role": "developer", "content": "be brief"}, USER[0]],
        seed=3,
        max_completion_tokens=30,
        tools=[tool],
        tool_choice="required",
        user="someone",
    )
    body = fake.requests[-1].json
    assert (body["random_seed"], body["max_tokens"], body["tool_choice"]) == (3, 30, "any")
    assert body["messages"][0]["role"] == "system" and "user" not in body
    call = (reply.choices[0].message.tool_calls or [])[0]
    assert VALID_ID.fullmatch(call.id) and call.type == "function"


def test_sdk_stream_without_include_usage_has_no_usage(
    client: openai.OpenAI, fakes: dict[str, FakeProviderServer]
) -> None:
    """Mistral's unasked usage does not reach a caller who did not ask for it."""
    fake = fakes["mistral"]
    fake.reset()
    fake.enqueue(Reply("Hello"))
    chunks = list(client.chat.completions.create(model="conf-mistral", messages=USER, stream=True))
    assert all(chunk.usage is None for chunk in chunks)
    assert "stream_options" not in fake.requests[-1].json


def test_embeddings_request_uses_mistrals_names() -> None:
    """dimensions -> output_dimension; user and encoding_format are left out (floats always come back)."""
    body = {"model": "m", "input": ["a"], "dimensions": 8, "user": "u", "encoding_format": "base64"}
    request = EmbeddingsRequest(body=body, model="m", inputs=["a"], encoding_format="base64", dimensions=8)
    upstream = mistral().build_embeddings_request(request)
    assert upstream.url == "https://api.mistral.ai/v1/embeddings"
    assert orjson.loads(upstream.body) == {
        "model": "mistral-small-latest",
        "input": ["a"],
        "output_dimension": 8,
    }


def test_token_id_embeddings_input_is_refused() -> None:
    """Mistral embeds text only: token-id input is a 400 naming `input`."""
    request = EmbeddingsRequest(body={"model": "m", "input": [1, 2]}, model="m", inputs=[[1, 2]])
    with pytest.raises(InvalidRequestError) as caught:
        mistral().build_embeddings_request(request)
    assert caught.value.param == "input"


def test_sdk_embeddings_through_mistral(client: openai.OpenAI, fakes: dict[str, FakeProviderServer]) -> None:
    """The SDK's default base64 request gets Mistral's float vectors back, encoded exactly."""
    fake = fakes["mistral"]
    fake.reset()
    result = client.embeddings.create(model="conf-mistral", input="hello", dimensions=6)
    assert result.data[0].embedding == FakeMistral.embedding("hello", 6)
    assert fake.requests[-1].json == {
        "model": "mistral-small-latest",
        "input": "hello",
        "output_dimension": 6,
    }
    assert result.usage.prompt_tokens == 1


def test_sdk_legacy_completions_run_as_a_chat_call(
    client: openai.OpenAI, fakes: dict[str, FakeProviderServer]
) -> None:
    """Mistral has no legacy /completions: the prompt goes to chat as one user message."""
    fake = fakes["mistral"]
    fake.reset()
    fake.enqueue(Reply("Bonjour"))
    result = client.completions.create(model="conf-mistral", prompt="Say hello", max_tokens=5)
    assert result.choices[0].text == "Bonjour"
    assert fake.requests[-1].path == "/v1/chat/completions"
    assert fake.requests[-1].json["messages"] == [{"role": "user", "content": "Say hello"}]
