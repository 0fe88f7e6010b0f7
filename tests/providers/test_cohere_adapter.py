"""CohereAdapter on recorded fixtures: OpenAI requests out, v2 chat replies, streams and embeds back in.

The last tests post the adapter's own requests to `FakeCohere` (and, for embeddings, go through the
shared conformance gateway with the OpenAI SDK), so translator and fake are checked against each other.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest

from sluicegate.errors import InvalidRequestError, UpstreamProtocolError, UpstreamStatusError
from sluicegate.providers.base import EMBEDDINGS, StreamTranslator
from sluicegate.providers.cohere import CohereAdapter
from sluicegate.types import ChatRequest, EmbeddingsRequest, UpstreamRequest
from sluicegate.upstream.sse import SSEDecoder, SSEEvent
from tests.fakes import Error, Reply, ToolCalls
from tests.fakes.fake_cohere import DEFAULT_EMBED_DIMENSIONS, TEMPLATE_TOKENS, FakeCohere
from tests.fakes.server import FakeProviderServer

from ._helpers import (
    adapter_factory,
    chat_request,
    decode_frames,
    embeddings_request,
    event,
    feed_stream,
    fixture_bytes,
    load_fixture,
    post,
    reply,
    sent_body,
)

HELLO = [{"role": "user", "content": "Hello"}]
KEY = "co-test-key"

make_adapter = adapter_factory(
    CohereAdapter, name="command", provider="cohere", model="command-a-03-2025", api_key=KEY
)


def load(name: str) -> Any:
    return load_fixture("cohere", name)


def chat(body: dict[str, Any], *, include_usage: bool = False) -> ChatRequest:
    return chat_request(body, "command", include_usage=include_usage)


def sent(body: dict[str, Any], **entry: Any) -> dict[str, Any]:
    """The JSON body the adapter would send to Cohere for this OpenAI body."""
    return sent_body(make_adapter(**entry), chat(body))


def parsed(body: Any) -> dict[str, Any]:
    result: dict[str, Any] = orjson.loads(
        make_adapter().parse_response(chat({"messages": HELLO}), reply(body)).content
    )
    return result


def run_stream(name: str, *, include_usage: bool = False) -> tuple[StreamTranslator, list[bytes]]:
    """Feed a raw SSE transcript through SSEDecoder and the translator in awkward 29-byte reads."""
    translator = make_adapter().stream_translator(
        chat({"messages": HELLO, "stream": True}, include_usage=include_usage)
    )
    return translator, feed_stream(translator, SSEDecoder(), fixture_bytes("cohere", name), read=29)


# --- the upstream request ---------------------------------------------------------------------


def test_request_goes_to_v2_chat_with_bearer_key_and_extra_headers() -> None:
    """The request is a POST to /v2/chat with the key as a bearer token and the entry's own headers."""
    adapter = make_adapter(headers={"X-Client-Name": "sluicegate"})
    upstream = adapter.build_request(chat({"messages": HELLO}))
    assert upstream.method == "POST"
    assert upstream.url == "https://api.cohere.com/v2/chat"
    assert upstream.headers == {
        "authorization": f"Bearer {KEY}",
        "content-type": "application/json",
        "accept": "application/json",
        "accept-encoding": "identity",
        "X-Client-Name": "sluicegate",
    }
    assert adapter.build_request(chat({"messages": HELLO})).headers is upstream.headers


@pytest.mark.parametrize(
    "api_base", ["https://proxy.example.com", "https://proxy.example.com/", "https://proxy.example.com/v2/"]
)
def test_custom_api_base_gets_exactly_one_v2(api_base: str) -> None:
    """A custom api_base gets /v2/chat and /v2/embed appended without doubling a trailing /v2."""
    adapter = make_adapter(api_base=api_base)
    assert (adapter.url, adapter.embed_url) == (
        "https://proxy.example.com/v2/chat",
        "https://proxy.example.com/v2/embed",
    )


def test_messages_translate_roles_images_plans_and_tool_results() -> None:
    """Developer becomes system, images stay image_url items, text beside tool calls becomes tool_plan."""
    case = load("request_openai_messages.json")
    assert sent(case["openai"]) == case["cohere"]


def test_named_tool_choice_offers_only_that_tool_and_requires_it() -> None:
    """A named function choice sends only that tool with REQUIRED; a strict tool turns on strict_tools."""
    case = load("request_openai_tools.json")
    assert sent(case["openai"]) == case["cohere"]


@pytest.mark.parametrize(("choice", "expected"), [("auto", None), ("none", "NONE"), ("required", "REQUIRED")])
def test_tool_choice_modes_map_to_cohere_words(choice: str, expected: str | None) -> None:
    """auto is Cohere's default (no key); none and required become NONE and REQUIRED."""
    tools = [{"type": "function", "function": {"name": "f"}}]
    assert sent({"messages": HELLO, "tools": tools, "tool_choice": choice}).get("tool_choice") == expected


def test_tool_choice_naming_a_missing_tool_is_a_400() -> None:
    """A named tool_choice whose function is not in `tools` is refused before the provider sees it."""
    tools = [{"type": "function", "function": {"name": "f"}}]
    with pytest.raises(InvalidRequestError) as info:
        sent(
            {
                "messages": HELLO,
                "tools": tools,
                "tool_choice": {"type": "function", "function": {"name": "g"}},
            }
        )
    assert info.value.param == "tool_choice.function.name"


def test_sampling_limits_stop_and_json_schema_translate() -> None:
    """max_completion_tokens wins, top_p is clamped into p's range, stop is a list, json_schema nests."""
    case = load("request_openai_sampling.json")
    assert sent(case["openai"]) == case["cohere"]


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [({"type": "json_object"}, {"type": "json_object"}), ({"type": "text"}, None)],
)
def test_json_mode_and_text_format(response_format: dict[str, Any], expected: Any) -> None:
    """JSON mode is Cohere's json_object; the text format is the default and is left out."""
    assert sent({"messages": HELLO, "response_format": response_format}).get("response_format") == expected


def test_default_max_tokens_from_the_entry_is_sent_only_when_the_caller_gives_none() -> None:
    """The entry's default_max_tokens fills in for a missing max_tokens; else Cohere's own default applies."""
    assert "max_tokens" not in sent({"messages": HELLO})
    assert sent({"messages": HELLO}, default_max_tokens=256)["max_tokens"] == 256
    assert sent({"messages": HELLO, "max_tokens": 9}, default_max_tokens=256)["max_tokens"] == 9


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("n", 2),
        ("logprobs", True),
        ("top_logprobs", 3),
        ("logit_bias", {"1": 5}),
        ("parallel_tool_calls", False),
    ],
)
def test_unsupported_parameters_are_refused_or_dropped(name: str, value: Any) -> None:
    """Parameters Cohere cannot honour get a 400 naming them, or vanish with drop_params: true."""
    body = {"messages": HELLO, "tools": [{"type": "function", "function": {"name": "f"}}], name: value}
    with pytest.raises(InvalidRequestError) as info:
        sent(body)
    assert info.value.param == name and info.value.code == "unsupported_parameter"
    assert name not in sent(body, drop_params=True)


def test_neutral_values_of_unsupported_parameters_pass() -> None:
    """n=1, logprobs false and parallel_tool_calls true ask for nothing and are not refused."""
    body = sent({"messages": HELLO, "n": 1, "logprobs": False, "parallel_tool_calls": True})
    assert not {"n", "logprobs", "parallel_tool_calls"} & body.keys()


def test_invalid_tool_call_arguments_are_a_400_naming_them() -> None:
    """Assistant tool-call arguments that are not JSON get a 400 naming their path."""
    body = {
        "messages": [
            *HELLO,
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
                ],
            },
        ]
    }
    with pytest.raises(InvalidRequestError) as info:
        sent(body)
    assert info.value.param == "messages[1].tool_calls[0].function.arguments"


@pytest.mark.parametrize(
    ("part", "param"),
    [
        (
            {"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}},
            "messages[0].content[0].type",
        ),
        (
            {"type": "image_url", "image_url": {"url": "ftp://x/y.png"}},
            "messages[0].content[0].image_url.url",
        ),
        (
            {"type": "image_url", "image_url": {"url": "data:image/png,xyz"}},
            "messages[0].content[0].image_url.url",
        ),
    ],
)
def test_unsupported_content_parts_are_a_400_naming_them(part: dict[str, Any], param: str) -> None:
    """Audio parts and images that are neither http(s) nor base64 data URLs get a 400 naming the part."""
    with pytest.raises(InvalidRequestError) as info:
        sent({"messages": [{"role": "user", "content": [part]}]})
    assert info.value.param == param


def test_translation_does_not_modify_the_callers_body() -> None:
    """Building the request leaves the caller's body as it was (a retry on another deployment reuses it)."""
    body = load("request_openai_messages.json")["openai"]
    before = copy.deepcopy(body)
    sent(body)
    assert body == before


# --- replies ------------------------------------------------------------------------------------


def test_text_reply_becomes_a_chat_completion_with_billed_usage() -> None:
    """Text items are joined (thinking dropped), the id is kept, usage is billed_units with cached tokens."""
    out = parsed(load("response_cohere_text.json"))
    assert out["id"] == "c14c80c3-18eb-4519-9460-6c92edd8cfb4"
    assert out["object"] == "chat.completion" and out["model"] == "command-a-03-2025"
    assert out["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Paris is the capital of France.", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert out["usage"]["prompt_tokens"] == 12 and out["usage"]["completion_tokens"] == 6
    assert out["usage"]["prompt_tokens_details"]["cached_tokens"] == 4


def test_tool_call_reply_keeps_ids_string_arguments_and_the_plan_as_content() -> None:
    """Tool calls keep Cohere's ids and JSON-string arguments; the tool_plan becomes the message content."""
    response = make_adapter().parse_response(
        chat({"messages": HELLO}), reply(load("response_cohere_tool_call.json"))
    )
    out = orjson.loads(response.content)
    message = out["choices"][0]["message"]
    assert message["content"] == "I will look up the weather in Paris and Rome."
    assert [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in message["tool_calls"]
    ] == [
        ("get_weather_2w8bq3e0n1hk", "get_weather", {"city": "Paris"}),
        ("get_weather_9xk2m1p0r7ta", "get_weather", {"city": "Rome"}),
    ]
    assert response.finish_reason == "tool_calls"
    assert response.usage is not None and (
        response.usage.prompt_tokens,
        response.usage.completion_tokens,
    ) == (30, 25)


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("COMPLETE", "stop"), ("STOP_SEQUENCE", "stop"), ("MAX_TOKENS", "length"), ("TOOL_CALL", "tool_calls")],
)
def test_finish_reasons_map_to_openai(reason: str, expected: str) -> None:
    """Each Cohere finish_reason becomes its OpenAI finish_reason (reference §8)."""
    body = {"id": "x", "finish_reason": reason, "message": {"role": "assistant", "content": []}}
    assert parsed(body)["choices"][0]["finish_reason"] == expected


@pytest.mark.parametrize("reason", ["ERROR", "TIMEOUT"])
def test_failed_generation_is_an_upstream_error(reason: str) -> None:
    """A reply whose finish_reason is ERROR or TIMEOUT is a provider failure (502), not a normal stop."""
    with pytest.raises(UpstreamStatusError) as info:
        parsed({"id": "x", "finish_reason": reason, "message": {"role": "assistant"}})
    assert info.value.http_status == 502 and reason in info.value.message


def test_usage_falls_back_to_tokens_without_billed_units() -> None:
    """Without billed_units, usage.tokens is used."""
    body = {
        "id": "x",
        "finish_reason": "COMPLETE",
        "message": {"role": "assistant", "content": [{"type": "text", "text": "hi"}]},
        "usage": {"tokens": {"input_tokens": 70, "output_tokens": 3}},
    }
    assert parsed(body)["usage"]["prompt_tokens"] == 70


def test_reply_that_is_not_a_chat_response_is_a_protocol_error() -> None:
    """A 200 body that is not JSON or has no message is reported as a bad upstream reply."""
    with pytest.raises(UpstreamProtocolError):
        parsed(b"<html>")
    with pytest.raises(UpstreamProtocolError):
        parsed({"id": "x"})


# --- streams ------------------------------------------------------------------------------------


def test_text_stream_becomes_chunks_with_usage_when_asked() -> None:
    """Text deltas (not thinking) become content chunks; message-end gives finish, usage and [DONE]."""
    translator, frames = run_stream("stream_text.txt", include_usage=True)
    assert decode_frames(frames) == load("stream_text.expected.json")
    assert translator.finished
    assert translator.usage is not None and (
        translator.usage.prompt_tokens,
        translator.usage.completion_tokens,
    ) == (9, 5)


def test_tool_stream_renders_plan_as_content_and_calls_by_index() -> None:
    """Plan deltas become content; each tool-call-start opens a call, deltas extend its arguments by index."""
    translator, frames = run_stream("stream_tools.txt")
    assert decode_frames(frames) == load("stream_tools.expected.json")
    assert translator.usage is not None and translator.usage.prompt_tokens == 37


def test_tool_calls_are_renumbered_from_zero_in_order_of_appearance() -> None:
    """Whatever indexes Cohere uses, OpenAI indexes are 0, 1, ... in the order the calls started."""
    translator = make_adapter().stream_translator(chat({"messages": HELLO, "stream": True}))
    indexes = []
    for cohere_index, name in ((3, "a"), (7, "b")):
        start = {"tool_calls": {"id": name, "type": "function", "function": {"name": name, "arguments": ""}}}
        delta = {"tool_calls": {"function": {"arguments": "{}"}}}
        for payload in (
            {"type": "tool-call-start", "index": cohere_index, "delta": {"message": start}},
            {"type": "tool-call-delta", "index": cohere_index, "delta": {"message": delta}},
        ):
            for frame in translator.feed(event(payload)):
                for call in orjson.loads(frame[6:])["choices"][0]["delta"].get("tool_calls", []):
                    indexes.append(call["index"])
    assert indexes == [0, 0, 1, 1]


def test_stream_error_at_message_end_raises_with_the_providers_message() -> None:
    """A message-end with finish_reason ERROR raises (the pipeline sends an in-band error) with its text."""
    with pytest.raises(UpstreamStatusError) as info:
        run_stream("stream_error.txt")
    assert "internal error while generating the response" in info.value.message
    assert info.value.http_status == 502


def test_cut_stream_fails_at_finish() -> None:
    """A stream that ends without message-end is an error at EOF, never a silent truncation."""
    translator, frames = run_stream("stream_cut.txt")
    assert any(b"Par" in frame for frame in frames)
    with pytest.raises(UpstreamProtocolError):
        translator.finish()


def test_done_sentinel_and_unknown_events_are_ignored() -> None:
    """An OpenAI-style [DONE] line, debug and citation events produce nothing."""
    translator = make_adapter().stream_translator(chat({"messages": HELLO, "stream": True}))
    assert translator.feed(SSEEvent("message", b"[DONE]")) == []
    assert translator.feed(event({"type": "debug", "prompt": "..."})) == []
    assert translator.feed(event({"type": "citation-start", "index": 0})) == []


def test_delta_before_message_start_still_opens_with_the_role() -> None:
    """If a stream starts without message-start, the first chunk still carries the assistant role."""
    translator = make_adapter().stream_translator(chat({"messages": HELLO, "stream": True}))
    delta = {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Hi"}}}}
    chunks = decode_frames(translator.feed(event(delta)))
    assert [c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "Hi"},
    ]


# --- errors -------------------------------------------------------------------------------------


def test_error_body_message_and_retry_after_reach_the_client() -> None:
    """Cohere's {"id","message"} keeps its message and status; a 429's retry-after is kept."""
    body = {"id": "abc", "message": "You are using a Trial key"}
    error = make_adapter().map_error(reply(body, 429, {"Retry-After": "3"}))
    assert isinstance(error, UpstreamStatusError)
    assert (error.http_status, error.message, error.error_type) == (
        429,
        "You are using a Trial key",
        "rate_limit_error",
    )
    assert error.headers == {"retry-after": "3"}


@pytest.mark.parametrize(("status", "expected"), [(500, 502), (503, 502), (498, 401), (404, 404)])
def test_error_statuses_map_to_ours(status: int, expected: int) -> None:
    """Provider 5xx become 502; Cohere's 498 invalid token becomes 401; other 4xx keep their status."""
    error = make_adapter().map_error(reply({"message": "nope"}, status))
    assert error.http_status == expected and error.message == "nope"


def test_non_json_error_body_is_quoted_in_the_message() -> None:
    """An HTML error page from a proxy still gives a message naming the status and some of the text."""
    error = make_adapter().map_error(reply(b"<html><body>Bad Gateway</body></html>", 502))
    assert "HTTP 502" in error.message and "Bad Gateway" in error.message


def test_error_with_data_field_uses_it() -> None:
    """Some Cohere errors carry their text in `data` rather than `message`."""
    assert make_adapter().map_error(reply({"data": "slow down"}, 429)).message == "slow down"


# --- embeddings ---------------------------------------------------------------------------------


def embed_request(body: dict[str, Any]) -> EmbeddingsRequest:
    return embeddings_request(body, "command")


def test_embeddings_request_asks_for_float_document_embeddings() -> None:
    """Embeddings go to /v2/embed with texts, input_type search_document, float types and the dimension."""
    adapter = make_adapter()
    assert EMBEDDINGS in adapter.capabilities
    upstream = adapter.build_embeddings_request(embed_request({"input": ["a", "b"], "dimensions": 512}))
    assert upstream.url == "https://api.cohere.com/v2/embed"
    assert orjson.loads(upstream.body) == {
        "model": "command-a-03-2025",
        "texts": ["a", "b"],
        "input_type": "search_document",
        "embedding_types": ["float"],
        "output_dimension": 512,
    }
    query = adapter.build_embeddings_request(embed_request({"input": "q", "input_type": "search_query"}))
    assert orjson.loads(query.body)["input_type"] == "search_query"


def test_embeddings_of_token_ids_are_a_400() -> None:
    """Cohere embeds text only: token-id input gets a 400 naming `input`."""
    with pytest.raises(InvalidRequestError) as info:
        make_adapter().build_embeddings_request(embed_request({"input": [[1, 2, 3]]}))
    assert info.value.param == "input"


def test_embeddings_reply_gives_float_vectors_and_billed_usage() -> None:
    """Float vectors come back in order with billed input tokens as usage; a count mismatch is an error."""
    adapter = make_adapter()
    response = adapter.parse_embeddings_response(
        embed_request({"input": ["hello", "goodbye"]}), reply(load("embed_response.json"))
    )
    assert response.vectors == load("embed_response.json")["embeddings"]["float"]
    assert response.usage is not None and response.usage.prompt_tokens == 2
    with pytest.raises(UpstreamProtocolError):
        adapter.parse_embeddings_response(
            embed_request({"input": ["only one"]}), reply(load("embed_response.json"))
        )


# --- against the fake ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeCohere]:
    with FakeCohere(api_key=KEY) as server:
        yield server


def test_fake_accepts_the_adapters_translation_of_a_full_conversation(fake: FakeCohere) -> None:
    """The translated conversation (images, plan, tool results, JSON schema) passes the fake's validation."""
    fake.reset()
    adapter = make_adapter(api_base=fake.base_url)
    body = load("request_openai_messages.json")["openai"]
    body["response_format"] = load("request_openai_sampling.json")["openai"]["response_format"]
    fake.enqueue(Reply("Merci.", prompt_tokens=50, completion_tokens=2))
    result = post(adapter.build_request(chat(body)))
    assert result.status == 200, result.body
    response = adapter.parse_response(chat(body), result)
    assert orjson.loads(response.content)["choices"][0]["message"]["content"] == "Merci."
    assert response.usage is not None and response.usage.prompt_tokens == 50  # billed, not +TEMPLATE_TOKENS
    assert TEMPLATE_TOKENS > 0


@pytest.mark.parametrize(
    ("mutation", "word"),
    [
        ({"top_p": 0.5}, "top_p"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}}, "json_schema"),
        ({"p": 1.0}, "p must be"),
    ],
)
def test_fake_rejects_openai_shapes_a_sloppy_translator_would_send(
    fake: FakeCohere, mutation: dict[str, Any], word: str
) -> None:
    """OpenAI-only keys, lower-case tool_choice, OpenAI's json_schema format and p=1 get Cohere's 400."""
    body = {"model": "command-a-03-2025", "messages": HELLO, **mutation}
    result = post(
        UpstreamRequest(
            "POST", f"{fake.base_url}/v2/chat", {"authorization": f"Bearer {KEY}"}, orjson.dumps(body)
        )
    )
    assert result.status == 400
    error = orjson.loads(result.body)
    assert word in error["message"] and error["id"]


def test_fake_rejects_a_tool_result_without_a_matching_call(fake: FakeCohere) -> None:
    """A tool message whose tool_call_id answers no earlier assistant call gets a 400."""
    body = {
        "model": "command-a-03-2025",
        "messages": [*HELLO, {"role": "tool", "tool_call_id": "nope", "content": "x"}],
    }
    result = post(
        UpstreamRequest(
            "POST", f"{fake.base_url}/v2/chat", {"authorization": f"Bearer {KEY}"}, orjson.dumps(body)
        )
    )
    assert result.status == 400 and b"nope" in result.body


def test_streamed_tool_calls_from_the_fake_translate_end_to_end(fake: FakeCohere) -> None:
    """The fake's tool-call stream, fed through the SSE decoder and translator, reassembles both calls."""
    fake.reset()
    adapter = make_adapter(api_base=fake.base_url)
    fake.enqueue(ToolCalls([("get_weather", {"city": "Paris"}), ("get_time", {})], text="Checking."))
    request = chat(
        {
            "messages": HELLO,
            "stream": True,
            "tools": [
                {"type": "function", "function": {"name": "get_weather"}},
                {"type": "function", "function": {"name": "get_time"}},
            ],
        }
    )
    result = post(adapter.build_request(request))
    translator = adapter.stream_translator(request)
    decoder = SSEDecoder()
    chunks = decode_frames([f for e in decoder.feed(result.body) for f in translator.feed(e)])
    args: dict[int, str] = {}
    names: dict[int, str] = {}
    content = ""
    for chunk in chunks[:-1]:
        delta = chunk["choices"][0]["delta"] if chunk["choices"] else {}
        content += delta.get("content") or ""
        for call in delta.get("tool_calls", []):
            names.setdefault(call["index"], call.get("function", {}).get("name"))
            args[call["index"]] = args.get(call["index"], "") + call["function"]["arguments"]
    assert content == "Checking."
    assert names == {0: "get_weather", 1: "get_time"}
    assert [json.loads(args[i]) for i in (0, 1)] == [{"city": "Paris"}, {}]
    assert chunks[-1] == "[DONE]" and translator.finished


def test_embeddings_through_the_gateway_with_the_openai_sdk(
    client: openai.OpenAI, fakes: dict[str, FakeProviderServer]
) -> None:
    """The SDK (base64 by default) gets the fake's float vectors back in order, billed tokens as usage."""
    fake = fakes["cohere"]
    fake.reset()
    result = client.embeddings.create(model="conf-cohere", input=["hello world", "bye"])
    expected = [FakeCohere.embedding(text, DEFAULT_EMBED_DIMENSIONS) for text in ("hello world", "bye")]
    assert [item.embedding for item in result.data] == [
        pytest.approx(vector, rel=1e-6) for vector in expected
    ]
    assert result.usage.prompt_tokens == 3
    upstream = fake.requests[-1].json
    assert upstream["input_type"] == "search_document" and upstream["texts"] == ["hello world", "bye"]


def test_embedding_errors_through_the_gateway_keep_their_class(
    client: openai.OpenAI, fakes: dict[str, FakeProviderServer]
) -> None:
    """A Cohere 429 on /v2/embed reaches the SDK as RateLimitError."""
    fake = fakes["cohere"]
    fake.reset()
    fake.enqueue(Error(429))
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="conf-cohere", input="x")
