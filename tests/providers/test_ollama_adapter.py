"""OllamaAdapter on recorded fixtures: OpenAI requests out, /api/chat replies and NDJSON streams back in.

Also covers `upstream/ndjson.py` (lines split across network reads), and at the end posts the adapter's
own requests to `FakeOllama` and runs embeddings through the shared conformance gateway.
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
from sluicegate.providers.ollama import OllamaAdapter
from sluicegate.types import ChatRequest, EmbeddingsRequest, UpstreamRequest
from sluicegate.upstream.ndjson import NDJSONDecoder
from tests.fakes import Error, Reply, ToolCalls
from tests.fakes.fake_ollama import DEFAULT_EMBED_DIMENSIONS, FakeOllama
from tests.fakes.server import FakeProviderServer

from ._helpers import (
    adapter_factory,
    chat_request,
    decode_frames,
    embeddings_request,
    feed_stream,
    fixture_bytes,
    load_fixture,
    post,
    reply,
    sent_body,
)
from ._helpers import event as line

HELLO = [{"role": "user", "content": "Hello"}]

make_adapter = adapter_factory(OllamaAdapter, name="llama", provider="ollama", model="llama3.2")


def load(name: str) -> Any:
    return load_fixture("ollama", name)


def chat(body: dict[str, Any], *, include_usage: bool = False) -> ChatRequest:
    return chat_request(body, "llama", include_usage=include_usage)


def sent(body: dict[str, Any], **entry: Any) -> dict[str, Any]:
    """The JSON body the adapter would send to Ollama for this OpenAI body."""
    return sent_body(make_adapter(**entry), chat(body))


def run_stream(
    name: str, *, include_usage: bool = False, read: int = 23
) -> tuple[StreamTranslator, list[bytes]]:
    """Feed a raw NDJSON transcript through the adapter's decoder and translator in `read`-byte pieces."""
    adapter = make_adapter()
    translator = adapter.stream_translator(
        chat({"messages": HELLO, "stream": True}, include_usage=include_usage)
    )
    raw = fixture_bytes("ollama", name)
    return translator, feed_stream(translator, adapter.stream_decoder(), raw, read=read)


# --- NDJSON framing -----------------------------------------------------------------------------


def test_ndjson_lines_split_across_every_read_boundary_come_out_whole() -> None:
    """At any read size, each line (CRLF, multi-byte UTF-8, no final newline) is one event; blanks none."""
    raw = b'{"a":1}\r\n\n{"b":"\xe2\x98\xba"}\n   \n{"c":3}'
    for size in range(1, len(raw) + 1):
        decoder = NDJSONDecoder()
        events = []
        for start in range(0, len(raw), size):
            events.extend(decoder.feed(raw[start : start + size]))
        events.extend(decoder.close())
        assert [orjson.loads(e.data) for e in events] == [{"a": 1}, {"b": "☺"}, {"c": 3}], size
        assert decoder.close() == []


def test_adapter_frames_its_stream_as_ndjson() -> None:
    """The Ollama adapter's stream decoder is the NDJSON one, not SSE."""
    assert isinstance(make_adapter().stream_decoder(), NDJSONDecoder)


# --- the upstream request ---------------------------------------------------------------------


def test_request_goes_to_api_chat_without_a_key_by_default() -> None:
    """The request is a POST to the local /api/chat with no Authorization header unless a key is set."""
    adapter = make_adapter()
    upstream = adapter.build_request(chat({"messages": HELLO}))
    assert (upstream.method, upstream.url) == ("POST", "http://127.0.0.1:11434/api/chat")
    assert upstream.headers == {"content-type": "application/json", "accept-encoding": "identity"}
    assert adapter.build_request(chat({"messages": HELLO})).headers is upstream.headers
    keyed = make_adapter(api_key="ollama-key", api_base="https://ollama.example.com/api/")
    assert keyed.url == "https://ollama.example.com/api/chat"
    assert keyed.embed_url == "https://ollama.example.com/api/embed"
    assert keyed.headers["authorization"] == "Bearer ollama-key"


def test_stream_flag_is_always_sent() -> None:
    """`stream` is explicit both ways: Ollama streams when it is absent."""
    assert sent({"messages": HELLO})["stream"] is False
    assert sent({"messages": HELLO, "stream": True})["stream"] is True


def test_messages_translate_to_strings_images_object_arguments_and_tool_names() -> None:
    """Parts join into strings, data-URL images become base64 `images`, tool results name their function."""
    case = load("request_openai_messages.json")
    assert sent(case["openai"]) == case["ollama"]


def test_sampling_tools_format_and_native_options_translate() -> None:
    """Sampling goes into options (max_tokens -> num_predict), caller options win, json_schema -> format."""
    case = load("request_openai_options.json")
    assert sent(case["openai"]) == case["ollama"]


@pytest.mark.parametrize(
    ("response_format", "expected"), [({"type": "json_object"}, "json"), ({"type": "text"}, None)]
)
def test_json_mode_is_format_json(response_format: dict[str, Any], expected: Any) -> None:
    """JSON mode is `format: "json"`; the text format sends no `format`."""
    assert sent({"messages": HELLO, "response_format": response_format}).get("format") == expected


def test_default_max_tokens_becomes_num_predict() -> None:
    """The entry's default_max_tokens is sent as num_predict when the caller gives none."""
    assert "options" not in sent({"messages": HELLO})
    assert sent({"messages": HELLO}, default_max_tokens=64)["options"] == {"num_predict": 64}


def test_tool_choice_none_offers_no_tools() -> None:
    """Ollama has no tool_choice; `none` is met by sending no tools at all."""
    tools = [{"type": "function", "function": {"name": "f"}}]
    assert "tools" not in sent({"messages": HELLO, "tools": tools, "tool_choice": "none"})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("n", 3),
        ("logprobs", True),
        ("logit_bias", {"7": 1}),
        ("tool_choice", "required"),
        ("tool_choice", {"type": "function", "function": {"name": "f"}}),
        ("parallel_tool_calls", False),
    ],
)
def test_unsupported_parameters_are_refused_or_dropped(name: str, value: Any) -> None:
    """Parameters Ollama cannot honour get a 400 naming them, or vanish with drop_params: true."""
    body = {"messages": HELLO, "tools": [{"type": "function", "function": {"name": "f"}}], name: value}
    with pytest.raises(InvalidRequestError) as info:
        sent(body)
    assert info.value.param == name and info.value.code == "unsupported_parameter"
    assert name not in sent(body, drop_params=True)


def test_reasoning_effort_becomes_think() -> None:
    """reasoning_effort low/medium/high is a think level; none turns thinking off; an explicit think wins."""
    assert sent({"messages": HELLO, "reasoning_effort": "high"})["think"] == "high"
    assert sent({"messages": HELLO, "reasoning_effort": "none"})["think"] is False
    assert sent({"messages": HELLO, "reasoning_effort": "low", "think": True})["think"] is True


def test_http_image_urls_are_a_clear_400() -> None:
    """An http(s) image URL is refused: Ollama takes bytes and the gateway never fetches a caller's URL."""
    content = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    with pytest.raises(InvalidRequestError) as info:
        sent({"messages": [{"role": "user", "content": content}]})
    assert info.value.param == "messages[0].content[0].image_url.url"
    assert "base64 data URL" in info.value.message


def test_tool_result_for_an_unknown_call_is_a_400() -> None:
    """A tool message whose tool_call_id matches no earlier call cannot be given a tool_name: 400."""
    with pytest.raises(InvalidRequestError) as info:
        sent({"messages": [*HELLO, {"role": "tool", "tool_call_id": "call_x", "content": "1"}]})
    assert info.value.param == "messages[1].tool_call_id"


@pytest.mark.parametrize("arguments", ["{oops", "[1, 2]"])
def test_tool_call_arguments_must_be_a_json_object(arguments: str) -> None:
    """Arguments that are not JSON, or not an object, get a 400 naming their path."""
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
    with pytest.raises(InvalidRequestError) as info:
        sent({"messages": [*HELLO, {"role": "assistant", "tool_calls": [call]}]})
    assert info.value.param == "messages[1].tool_calls[0].function.arguments"


def test_translation_does_not_modify_the_callers_body() -> None:
    """Building the request leaves the caller's body as it was (a retry on another deployment reuses it)."""
    body = load("request_openai_options.json")["openai"]
    before = copy.deepcopy(body)
    sent(body)
    assert body == before


# --- replies ------------------------------------------------------------------------------------


def test_text_reply_becomes_a_chat_completion_with_eval_counts_as_usage() -> None:
    """Content (not thinking) is the message; prompt_eval_count and eval_count are the usage."""
    response = make_adapter().parse_response(
        chat({"messages": HELLO}), reply(load("response_ollama_text.json"))
    )
    out = orjson.loads(response.content)
    assert out["id"].startswith("chatcmpl-") and out["model"] == "llama3.2"
    assert out["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Paris is the capital of France.", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert (
        out["usage"]["prompt_tokens"],
        out["usage"]["completion_tokens"],
        out["usage"]["total_tokens"],
    ) == (
        31,
        8,
        39,
    )


def test_tool_call_reply_gets_minted_ids_and_string_arguments() -> None:
    """Ollama's id-less calls get distinct ids, JSON-string arguments, and finish_reason tool_calls."""
    response = make_adapter().parse_response(
        chat({"messages": HELLO}), reply(load("response_ollama_tool_calls.json"))
    )
    message = orjson.loads(response.content)["choices"][0]["message"]
    calls = message["tool_calls"]
    assert message["content"] is None and response.finish_reason == "tool_calls"
    assert [(c["type"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("function", "get_weather", {"city": "Paris"}),
        ("function", "get_weather", {"city": "Rome", "unit": "celsius"}),
    ]
    assert len({c["id"] for c in calls}) == 2 and all(c["id"].startswith("call_") for c in calls)
    assert all("index" not in c for c in calls)


def test_done_reason_length_is_length() -> None:
    """done_reason length becomes finish_reason length."""
    body = {**load("response_ollama_text.json"), "done_reason": "length"}
    assert make_adapter().parse_response(chat({"messages": HELLO}), reply(body)).finish_reason == "length"


def test_cached_prompt_without_prompt_eval_count_counts_zero() -> None:
    """Ollama omits prompt_eval_count when the prompt was cached; prompt tokens are then 0, not an error."""
    body = load("response_ollama_text.json")
    del body["prompt_eval_count"]
    usage = make_adapter().parse_response(chat({"messages": HELLO}), reply(body)).usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (0, 8)


def test_reply_that_is_not_a_chat_response_is_a_protocol_error() -> None:
    """A 200 body that is not JSON or has no message is reported as a bad upstream reply."""
    with pytest.raises(UpstreamProtocolError):
        make_adapter().parse_response(chat({"messages": HELLO}), reply(b"not json"))
    with pytest.raises(UpstreamProtocolError):
        make_adapter().parse_response(chat({"messages": HELLO}), reply({"done": True}))


# --- streams ------------------------------------------------------------------------------------


@pytest.mark.parametrize("read", [1, 7, 4096])
def test_text_stream_becomes_chunks_with_usage_when_asked(read: int) -> None:
    """NDJSON lines (thinking dropped) become content chunks; the done line the finish, usage and [DONE]."""
    translator, frames = run_stream("stream_text.ndjson", include_usage=True, read=read)
    assert decode_frames(frames, minted_id=True) == load("stream_text.expected.json")
    assert translator.finished
    assert translator.usage is not None and (
        translator.usage.prompt_tokens,
        translator.usage.completion_tokens,
    ) == (
        26,
        5,
    )


def test_tool_stream_numbers_calls_across_lines_and_mints_ids() -> None:
    """Calls over several lines get indexes 0, 1, 2, distinct ids, whole JSON arguments, finish tool_calls."""
    translator, frames = run_stream("stream_tools.ndjson")
    chunks = decode_frames(frames, minted_id=True)
    assert chunks[-1] == "[DONE]" and "usage" not in chunks[-2]
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1]]
    assert deltas[1] == {"content": "Checking."}
    calls = [call for delta in deltas for call in delta.get("tool_calls", [])]
    assert [(c["index"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        (0, "get_weather", {"city": "Paris"}),
        (1, "get_weather", {"city": "Rome"}),
        (2, "get_time", {}),
    ]
    assert len({c["id"] for c in calls}) == 3
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert translator.usage is not None and translator.usage.completion_tokens == 41


def test_error_line_in_a_stream_raises_with_its_message() -> None:
    """An `{"error": ...}` line after HTTP 200 raises with its text (the pipeline sends an in-band error)."""
    with pytest.raises(UpstreamStatusError) as info:
        run_stream("stream_error.ndjson")
    assert "unexpected EOF" in info.value.message and info.value.http_status == 502


def test_stream_without_done_line_fails_at_finish() -> None:
    """A stream cut before the `done: true` line is an error at EOF, never a silent truncation."""
    translator = make_adapter().stream_translator(chat({"messages": HELLO, "stream": True}))
    translator.feed(line({"message": {"role": "assistant", "content": "Par"}, "done": False}))
    with pytest.raises(UpstreamProtocolError):
        translator.finish()


def test_single_done_line_is_a_whole_stream() -> None:
    """A reply that fits in the final line alone still yields role, content, finish and [DONE]."""
    translator = make_adapter().stream_translator(chat({"messages": HELLO, "stream": True}))
    payload = {
        "message": {"role": "assistant", "content": "Hi"},
        "done": True,
        "done_reason": "stop",
        "eval_count": 1,
    }
    chunks = decode_frames(translator.feed(line(payload)), minted_id=True)
    assert [c if c == "[DONE]" else c["choices"][0]["delta"] for c in chunks] == [
        {"role": "assistant", "content": ""},
        {"content": "Hi"},
        {},
        "[DONE]",
    ]


# --- errors -------------------------------------------------------------------------------------


def test_model_not_found_is_a_404_with_ollamas_message() -> None:
    """Ollama's 404 for a model not pulled stays a 404 with code model_not_found and its message."""
    error = make_adapter().map_error(reply({"error": 'model "llama9" not found, try pulling it first'}, 404))
    assert isinstance(error, UpstreamStatusError)
    assert (error.http_status, error.code) == (404, "model_not_found")
    assert error.message == 'model "llama9" not found, try pulling it first'


@pytest.mark.parametrize(("status", "expected"), [(400, 400), (429, 429), (500, 502), (503, 502), (401, 401)])
def test_error_statuses_map_to_ours(status: int, expected: int) -> None:
    """4xx keep their status (a 401 is from a proxy or ollama.com), 5xx become 502; retry-after is kept."""
    error = make_adapter().map_error(reply({"error": "busy"}, status, {"Retry-After": "2"}))
    assert error.http_status == expected and error.message == "busy"
    assert error.headers == {"retry-after": "2"}


def test_plain_text_404_is_quoted() -> None:
    """Go's plain-text `404 page not found` (a wrong api_base) becomes a message quoting it."""
    error = make_adapter().map_error(reply(b"404 page not found", 404))
    assert error.http_status == 404 and "404 page not found" in error.message


# --- embeddings ---------------------------------------------------------------------------------


def embed_request(body: dict[str, Any]) -> EmbeddingsRequest:
    return embeddings_request(body, "llama")


def test_embeddings_request_goes_to_api_embed_with_dimensions() -> None:
    """Embeddings go to /api/embed with the inputs as a list, dimensions, and Ollama's own extras."""
    adapter = make_adapter(model="nomic-embed-text")
    assert EMBEDDINGS in adapter.capabilities
    upstream = adapter.build_embeddings_request(
        embed_request({"input": ["a", "b"], "dimensions": 256, "keep_alive": "1m"})
    )
    assert upstream.url == "http://127.0.0.1:11434/api/embed"
    assert orjson.loads(upstream.body) == {
        "model": "nomic-embed-text",
        "input": ["a", "b"],
        "dimensions": 256,
        "keep_alive": "1m",
    }


def test_embeddings_of_token_ids_are_a_400() -> None:
    """Ollama embeds text only: token-id input gets a 400 naming `input`."""
    with pytest.raises(InvalidRequestError) as info:
        make_adapter().build_embeddings_request(embed_request({"input": [[1, 2]]}))
    assert info.value.param == "input"


def test_embeddings_reply_gives_vectors_and_prompt_eval_count() -> None:
    """Vectors come back in order with prompt_eval_count as usage; a count mismatch is an error."""
    adapter = make_adapter()
    response = adapter.parse_embeddings_response(
        embed_request({"input": ["a", "b"]}), reply(load("embed_response.json"))
    )
    assert response.vectors == load("embed_response.json")["embeddings"]
    assert response.usage is not None and response.usage.prompt_tokens == 8
    with pytest.raises(UpstreamProtocolError):
        adapter.parse_embeddings_response(embed_request({"input": ["a"]}), reply(load("embed_response.json")))


# --- against the fake ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


def test_fake_accepts_the_adapters_translation_of_a_full_conversation(fake: FakeOllama) -> None:
    """The translated conversation (images, object arguments, tool names, options, format) passes the fake."""
    fake.reset()
    adapter = make_adapter(api_base=fake.base_url)
    body = load("request_openai_messages.json")["openai"]
    options = load("request_openai_options.json")["openai"]
    body.update({k: options[k] for k in ("max_tokens", "temperature", "stop", "tools", "response_format")})
    fake.enqueue(Reply("Merci.", prompt_tokens=60, completion_tokens=2))
    result = post(adapter.build_request(chat(body)))
    assert result.status == 200, result.body
    response = adapter.parse_response(chat(body), result)
    assert orjson.loads(response.content)["choices"][0]["message"]["content"] == "Merci."
    assert response.usage is not None and response.usage.prompt_tokens == 60


def test_fake_streams_when_stream_is_absent_like_ollama(fake: FakeOllama) -> None:
    """A body without `stream` gets an NDJSON stream, which is why the adapter always sends it."""
    fake.reset()
    raw = orjson.dumps({"model": "llama3.2", "messages": HELLO})
    result = post(
        UpstreamRequest("POST", f"{fake.base_url}/api/chat", {"content-type": "application/json"}, raw)
    )
    assert result.status == 200 and result.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [orjson.loads(x) for x in result.body.splitlines()]
    assert lines[-1]["done"] is True and all(x["done"] is False for x in lines[:-1])


@pytest.mark.parametrize(
    ("message", "word"),
    [
        (
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}],
            },
            "cannot unmarshal string",
        ),
        ({"role": "tool", "content": "1", "tool_call_id": "call_1"}, "tool_call_id"),
        ({"role": "user", "content": [{"type": "text", "text": "hi"}]}, "cannot unmarshal array"),
    ],
)
def test_fake_rejects_openai_shapes_a_sloppy_translator_would_send(
    fake: FakeOllama, message: dict[str, Any], word: str
) -> None:
    """String arguments, OpenAI tool_call_id links and content parts get a 400 with an `error` string."""
    raw = orjson.dumps({"model": "llama3.2", "stream": False, "messages": [*HELLO, message]})
    result = post(UpstreamRequest("POST", f"{fake.base_url}/api/chat", {}, raw))
    assert result.status == 400 and word in orjson.loads(result.body)["error"]


def test_fake_answers_unknown_models_with_404(fake: FakeOllama) -> None:
    """A model that is not pulled gets Ollama's 404, which the adapter maps to model_not_found."""
    adapter = make_adapter(api_base=fake.base_url, model="mistral-nemo")
    result = post(adapter.build_request(chat({"messages": HELLO})))
    error = adapter.map_error(result)
    assert (error.http_status, error.code) == (404, "model_not_found") and "mistral-nemo" in error.message


def test_streamed_tool_calls_from_the_fake_translate_end_to_end(fake: FakeOllama) -> None:
    """The fake's NDJSON tool-call stream, through the adapter's decoder and translator, gives both calls."""
    fake.reset()
    adapter = make_adapter(api_base=fake.base_url)
    fake.enqueue(ToolCalls([("get_weather", {"city": "Paris"}), ("get_time", {})]))
    tools = [{"type": "function", "function": {"name": n}} for n in ("get_weather", "get_time")]
    request = chat({"messages": HELLO, "stream": True, "tools": tools})
    result = post(adapter.build_request(request))
    translator, decoder = adapter.stream_translator(request), adapter.stream_decoder()
    events = [*decoder.feed(result.body), *decoder.close()]
    chunks = decode_frames([frame for e in events for frame in translator.feed(e)], minted_id=True)
    calls = [call for c in chunks[:-1] for call in c["choices"][0]["delta"].get("tool_calls", [])]
    assert [(c["index"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        (0, "get_weather", {"city": "Paris"}),
        (1, "get_time", {}),
    ]
    assert translator.finished


def test_embeddings_through_the_gateway_with_the_openai_sdk(
    client: openai.OpenAI, fakes: dict[str, FakeProviderServer]
) -> None:
    """The SDK (base64 by default) gets the fake's vectors in order and prompt_eval_count as usage."""
    fake = fakes["ollama"]
    fake.reset()
    result = client.embeddings.create(model="conf-ollama", input=["hello world", "bye"])
    expected = [FakeOllama.embedding(text, DEFAULT_EMBED_DIMENSIONS) for text in ("hello world", "bye")]
    assert [item.embedding for item in result.data] == [
        pytest.approx(vector, rel=1e-6) for vector in expected
    ]
    assert result.usage.prompt_tokens == 3
    assert fake.requests[-1].json == {"model": "llama3.2", "input": ["hello world", "bye"]}


def test_embedding_errors_through_the_gateway_keep_their_class(
    client: openai.OpenAI, fakes: dict[str, FakeProviderServer]
) -> None:
    """An Ollama 404 on /api/embed reaches the SDK as NotFoundError."""
    fake = fakes["ollama"]
    fake.reset()
    fake.enqueue(Error(404))
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="conf-ollama", input="x")
