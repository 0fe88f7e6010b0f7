"""GeminiAdapter on recorded fixtures: OpenAI requests out, GenerateContentResponses and streams back in."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from sluicegate.errors import InvalidRequestError, UpstreamProtocolError, UpstreamStatusError
from sluicegate.providers.base import DONE_FRAME, EMBEDDINGS, StreamTranslator
from sluicegate.providers.gemini import GeminiAdapter, gemini_schema
from sluicegate.types import ChatRequest, EmbeddingsRequest
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

FIXTURES = fixture_dir("gemini")
HELLO = [{"role": "user", "content": "Hello"}]
MINTED = "<minted>"

make_adapter = adapter_factory(
    GeminiAdapter, name="gemini", provider="gemini", model="gemini-2.5-flash", api_key="AIza-test"
)


def load(name: str) -> Any:
    return load_fixture("gemini", name)


def chat(body: dict[str, Any], *, include_usage: bool = False) -> ChatRequest:
    return chat_request(body, "gemini", include_usage=include_usage)


def sent(body: dict[str, Any], **entry: Any) -> dict[str, Any]:
    """The JSON body the adapter would send to Gemini for this OpenAI body."""
    return sent_body(make_adapter(**entry), chat(body))


def parsed(body: Any) -> dict[str, Any]:
    """The chat.completion the adapter makes of a Gemini reply, `created` checked and removed."""
    result = make_adapter().parse_response(chat({"messages": HELLO}), reply(body))
    out: dict[str, Any] = orjson.loads(result.content)
    assert isinstance(out.pop("created"), int)
    return out


def mask_minted(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replace gateway-minted tool-call ids (checked to look like OpenAI's) by a placeholder."""
    masked = []
    for call in calls:
        if call["id"].startswith("call_"):
            assert len(call["id"]) == 29
            call = {**call, "id": MINTED}
        masked.append(call)
    return masked


def run_stream(name: str, *, include_usage: bool = False) -> tuple[StreamTranslator, list[bytes]]:
    """Feed a raw SSE transcript through SSEDecoder and the translator in awkward 29-byte reads."""
    translator = make_adapter().stream_translator(
        chat({"messages": HELLO, "stream": True}, include_usage=include_usage)
    )
    return translator, feed_stream(translator, SSEDecoder(), (FIXTURES / name).read_bytes(), read=29)


# --- the upstream request ---------------------------------------------------------------------


def test_request_goes_to_generate_content_with_key_header() -> None:
    """A call is a POST to v1beta/models/{m}:generateContent with x-goog-api-key and the entry's headers."""
    adapter = make_adapter(headers={"x-goog-user-project": "billing"})
    upstream = adapter.build_request(chat({"messages": HELLO}))
    assert upstream.method == "POST"
    assert upstream.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    )
    assert upstream.headers == {
        "content-type": "application/json",
        "accept-encoding": "identity",
        "x-goog-api-key": "AIza-test",
        "x-goog-user-project": "billing",
    }
    assert adapter.build_request(chat({"messages": HELLO})).headers is upstream.headers


def test_stream_goes_to_stream_generate_content_with_alt_sse_and_no_stream_key() -> None:
    """A stream uses :streamGenerateContent?alt=sse; the body carries no `stream` key (the URL decides)."""
    upstream = make_adapter().build_request(chat({"messages": HELLO, "stream": True}))
    assert upstream.url.endswith("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
    assert orjson.loads(upstream.body) == {"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]}


@pytest.mark.parametrize(
    ("api_base", "model", "url"),
    [
        ("http://127.0.0.1:9/", "gemini-x", "http://127.0.0.1:9/v1beta/models/gemini-x:generateContent"),
        ("http://proxy/v1beta", "models/gemini-x", "http://proxy/v1beta/models/gemini-x:generateContent"),
        ("http://proxy/v1", "tunedModels/mine", "http://proxy/v1/tunedModels/mine:generateContent"),
    ],
)
def test_api_base_and_model_resource_names_build_one_url(api_base: str, model: str, url: str) -> None:
    """api_base gets /v1beta unless it names a version; bare ids get models/, resource names stay."""
    assert make_adapter(api_base=api_base, model=model).url == url


def test_conversation_translates_roles_images_tool_calls_and_results() -> None:
    """System/developer -> systemInstruction; turns merge; images, calls, results and signatures map."""
    case = load("request_openai_conversation.json")
    assert sent(case["openai"]) == case["gemini"]


def test_tools_schemas_are_cleaned_and_named_choice_becomes_any() -> None:
    """Function schemas lose keywords Gemini rejects, refs inline, nulls become nullable; named -> ANY."""
    case = load("request_openai_tools.json")
    assert sent(case["openai"]) == case["gemini"]


def test_generation_parameters_and_json_schema_translate() -> None:
    """Sampling, limits, stop, n, seed, penalties, logprobs, effort and json_schema go to generationConfig."""
    case = load("request_openai_generation.json")
    assert sent(case["openai"]) == case["gemini"]


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("request_openai_*.json")))
def test_build_request_leaves_the_callers_body_untouched(name: str) -> None:
    """Translating a request never mutates request.body (a retry on another deployment reuses it)."""
    body = load(name)["openai"]
    before = copy.deepcopy(body)
    make_adapter().build_request(chat(body))
    assert body == before


def test_null_and_absent_parameters_are_not_sent() -> None:
    """Parameters the caller left out or set to null never appear in the upstream body."""
    absent = ("temperature", "top_p", "stop", "tools", "tool_choice", "seed", "n", "max_tokens", "user")
    body: dict[str, Any] = {"messages": HELLO, **dict.fromkeys(absent)}
    assert sent(body) == {"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]}


def test_json_object_mode_sets_only_the_json_mime_type() -> None:
    """response_format json_object asks for application/json output without a schema."""
    body = sent({"messages": HELLO, "response_format": {"type": "json_object"}})
    assert body["generationConfig"] == {"responseMimeType": "application/json"}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"mode": "AUTO"}),
        ("required", {"mode": "ANY"}),
        ("none", {"mode": "NONE"}),
        ({"type": "function", "function": {"name": "f"}}, {"mode": "ANY", "allowedFunctionNames": ["f"]}),
    ],
)
def test_tool_choice_variants_map_to_function_calling_config(choice: Any, expected: dict[str, Any]) -> None:
    """Each OpenAI tool_choice form maps to its Gemini functionCallingConfig."""
    tools = [{"type": "function", "function": {"name": "f"}}]
    body = sent({"messages": HELLO, "tools": tools, "tool_choice": choice})
    assert body["toolConfig"] == {"functionCallingConfig": expected}


def test_allowed_tools_auto_declares_only_the_allowed_functions() -> None:
    """allowed_tools in auto mode keeps only the allowed declarations (Gemini restricts names only in ANY)."""
    tools = [{"type": "function", "function": {"name": n}} for n in ("a", "b", "c")]
    allowed = {"mode": "auto", "tools": [{"type": "function", "function": {"name": "b"}}]}
    body = sent(
        {
            "messages": HELLO,
            "tools": tools,
            "tool_choice": {"type": "allowed_tools", "allowed_tools": allowed},
        }
    )
    assert body["tools"] == [{"functionDeclarations": [{"name": "b"}]}]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    required = {**allowed, "mode": "required"}
    body = sent(
        {
            "messages": HELLO,
            "tools": tools,
            "tool_choice": {"type": "allowed_tools", "allowed_tools": required},
        }
    )
    assert len(body["tools"][0]["functionDeclarations"]) == 3
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["b"]}}


def test_tool_result_without_a_matching_call_gets_400_naming_it() -> None:
    """A tool message whose id matches no earlier call gets a 400: Gemini needs the function's name."""
    messages = [*HELLO, {"role": "tool", "tool_call_id": "call_x", "content": "42"}]
    with pytest.raises(InvalidRequestError) as info:
        sent({"messages": messages})
    assert info.value.param == "messages[1].tool_call_id"
    assert "call_x" in info.value.message


def test_invalid_tool_call_arguments_get_400_naming_the_param() -> None:
    """Assistant tool_call arguments that are not a JSON object get a 400 naming the exact path."""
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1, 2]"}}
    with pytest.raises(InvalidRequestError) as info:
        sent({"messages": [*HELLO, {"role": "assistant", "tool_calls": [call]}]})
    assert info.value.param == "messages[1].tool_calls[0].function.arguments"


def test_logit_bias_gets_400_unless_drop_params() -> None:
    """logit_bias has no Gemini equivalent: 400 unsupported_parameter, or dropped with drop_params."""
    body = {"messages": HELLO, "logit_bias": {"50256": -100}}
    with pytest.raises(InvalidRequestError) as info:
        sent(body)
    assert (info.value.param, info.value.code) == ("logit_bias", "unsupported_parameter")
    assert "logit_bias" not in str(sent(body, drop_params=True))


def test_unusable_image_url_gets_400_naming_the_part() -> None:
    """An image URL that is neither http(s), gs:// nor a base64 data URL gets a 400 naming its url."""
    content = [{"type": "image_url", "image_url": {"url": "ftp://host/a.png"}}]
    with pytest.raises(InvalidRequestError) as info:
        sent({"messages": [{"role": "user", "content": content}]})
    assert info.value.param == "messages[0].content[0].image_url.url"


def test_recursive_schema_ref_gets_a_clear_400() -> None:
    """A schema that refers to itself cannot be inlined and gets a 400 naming the tool's parameters."""
    schema = {
        "type": "object",
        "$defs": {"Node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}}}},
        "properties": {"root": {"$ref": "#/$defs/Node"}},
    }
    tools = [{"type": "function", "function": {"name": "tree", "parameters": schema}}]
    with pytest.raises(InvalidRequestError) as info:
        sent({"messages": HELLO, "tools": tools})
    assert info.value.param == "tools[0].function.parameters"


def test_schema_cleaner_never_renames_properties() -> None:
    """Property names that look like schema keywords stay as they are."""
    schema = {"type": "object", "properties": {"type": {"type": "string"}, "$ref": {"type": "number"}}}
    assert gemini_schema(schema)["properties"] == {"type": {"type": "STRING"}, "$ref": {"type": "NUMBER"}}


# --- the non-streamed reply -------------------------------------------------------------------


def test_text_reply_drops_thoughts_and_normalises_usage() -> None:
    """Text parts join, thought parts are left out, usage counts tool-use prompt, thoughts and cache."""
    case = load("response_gemini_text.json")
    assert parsed(case["gemini"]) == case["openai"]


def test_function_calls_become_tool_calls_with_minted_ids_and_signatures() -> None:
    """functionCall parts become tool calls (ids minted when absent, else kept), finishing with tool_calls."""
    case = load("response_gemini_tool_calls.json")
    body = parsed(case["gemini"])
    message = body["choices"][0]["message"]
    message["tool_calls"] = mask_minted(message["tool_calls"])
    assert body == case["openai"]
    ids = [c["id"] for c in parsed(case["gemini"])["choices"][0]["message"]["tool_calls"]]
    assert len(set(ids)) == 3


def test_blocked_prompt_becomes_content_filter_completion() -> None:
    """A reply with no candidates but a blockReason is an empty completion finishing with content_filter."""
    case = load("response_gemini_blocked.json")
    assert parsed(case["gemini"]) == case["openai"]


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("STOP", "stop"),
        ("OTHER", "stop"),
        ("FINISH_REASON_UNSPECIFIED", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("LANGUAGE", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("SOMETHING_NEW", "stop"),
    ],
)
def test_every_finish_reason_maps_to_its_openai_value(reason: str, finish: str) -> None:
    """Each Gemini finishReason maps to the OpenAI finish_reason of reference §8."""
    gemini = load("response_gemini_text.json")["gemini"]
    gemini["candidates"][0]["finishReason"] = reason
    result = make_adapter().parse_response(chat({"messages": HELLO}), reply(gemini))
    assert result.finish_reason == finish
    assert orjson.loads(result.content)["choices"][0]["finish_reason"] == finish


@pytest.mark.parametrize("reason", ["MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"])
def test_failed_function_call_turn_is_a_retryable_provider_error(reason: str) -> None:
    """A turn that ended in a malformed or unexpected function call is a retryable 502 naming the reason."""
    gemini = {"candidates": [{"finishReason": reason, "finishMessage": "bad call", "index": 0}]}
    with pytest.raises(UpstreamStatusError) as info:
        make_adapter().parse_response(chat({"messages": HELLO}), reply(gemini))
    assert (info.value.http_status, info.value.code, info.value.is_retryable) == (502, reason, True)
    assert "bad call" in info.value.message


def test_several_candidates_become_choices_in_index_order() -> None:
    """With candidateCount > 1 every candidate is a choice, ordered by its index."""
    gemini = {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": "B"}]},
                "finishReason": "MAX_TOKENS",
                "index": 1,
            },
            {"content": {"role": "model", "parts": [{"text": "A"}]}, "finishReason": "STOP", "index": 0},
        ]
    }
    choices = parsed(gemini)["choices"]
    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in choices] == [
        (0, "A", "stop"),
        (1, "B", "length"),
    ]


def test_logprobs_result_becomes_openai_logprobs() -> None:
    """logprobsResult chosen and top candidates become choices[].logprobs.content entries."""
    gemini = load("response_gemini_text.json")["gemini"]
    gemini["candidates"][0]["logprobsResult"] = {
        "chosenCandidates": [
            {"token": "Pa", "logProbability": -0.1},
            {"token": "ris", "logProbability": -0.2},
        ],
        "topCandidates": [
            {
                "candidates": [
                    {"token": "Pa", "logProbability": -0.1},
                    {"token": "Lo", "logProbability": -2.5},
                ]
            },
            {"candidates": [{"token": "ris", "logProbability": -0.2}]},
        ],
    }
    logprobs = parsed(gemini)["choices"][0]["logprobs"]
    assert logprobs["content"][0] == {
        "token": "Pa",
        "logprob": -0.1,
        "bytes": [80, 97],
        "top_logprobs": [
            {"token": "Pa", "logprob": -0.1, "bytes": [80, 97]},
            {"token": "Lo", "logprob": -2.5, "bytes": [76, 111]},
        ],
    }
    assert [entry["token"] for entry in logprobs["content"]] == ["Pa", "ris"]


@pytest.mark.parametrize("raw", [b"<html>oops</html>", b"[1, 2]", b'{"responseId": "x"}'])
def test_unparseable_reply_is_a_protocol_error(raw: bytes) -> None:
    """A reply that is not JSON, or not a GenerateContentResponse, raises UpstreamProtocolError."""
    with pytest.raises(UpstreamProtocolError):
        make_adapter().parse_response(chat({"messages": HELLO}), reply(raw))


# --- the stream -------------------------------------------------------------------------------


def test_text_stream_becomes_openai_chunks_with_last_usage_kept() -> None:
    """CRLF-framed events become role, content and finish chunks; thoughts are dropped; last usage wins."""
    translator, frames = run_stream("stream_text.txt")
    assert decode_frames(frames) == load("stream_text.expected.json")
    assert not translator.finished
    assert decode_frames(translator.finish()) == ["[DONE]"]
    assert translator.finished
    usage = translator.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, usage.reasoning_tokens) == (
        12,
        12,
        4,
        7,
    )


def test_include_usage_adds_usage_chunk_before_done() -> None:
    """With include_usage every chunk has usage null and finish() adds a choices-less usage chunk."""
    translator, frames = run_stream("stream_text.txt", include_usage=True)
    assert all(chunk["usage"] is None for chunk in decode_frames(frames))
    tail = decode_frames(translator.finish())
    assert tail[-1] == "[DONE]"
    assert tail[0] == {
        "id": "resp_stream_1",
        "object": "chat.completion.chunk",
        "model": "gemini-2.5-flash",
        "choices": [],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 12,
            "total_tokens": 24,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 7},
        },
    }


def test_streamed_function_calls_are_whole_tool_call_deltas_indexed_per_turn() -> None:
    """Each streamed functionCall is one whole tool-call delta, indexed 0, 1, 2, finishing with tool_calls."""
    translator, frames = run_stream("stream_tools.txt")
    chunks = decode_frames(frames)
    assert chunks[1]["choices"][0]["delta"] == {"content": "Checking both."}
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if "tool_calls" in c["choices"][0]["delta"]
    ]
    assert [(c["index"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        (0, "get_weather", '{"city":"Paris"}'),
        (1, "get_weather", '{"city":"Rome"}'),
        (2, "get_time", "{}"),
    ]
    assert all(c["type"] == "function" and c["id"].startswith("call_") for c in calls)
    assert len({c["id"] for c in calls}) == 3
    assert calls[0]["extra_content"] == {"google": {"thought_signature": "c2ln"}}
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "tool_calls",
    }
    assert translator.finish()[-1] == DONE_FRAME


def test_cut_stream_fails_at_finish_but_keeps_usage_seen() -> None:
    """A stream that ends before any finishReason makes finish() raise; usage seen so far is kept."""
    translator, frames = run_stream("stream_cut.txt")
    chunks = decode_frames(frames)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Paris is"
    with pytest.raises(UpstreamProtocolError):
        translator.finish()
    assert translator.usage is not None and translator.usage.completion_tokens == 2


def test_error_event_mid_stream_raises_with_its_status() -> None:
    """A `data: {"error": ...}` event after HTTP 200 raises UpstreamStatusError with Google's code."""
    translator = make_adapter().stream_translator(chat({"messages": HELLO, "stream": True}))
    decoder = SSEDecoder()
    with pytest.raises(UpstreamStatusError) as info:
        for sse in decoder.feed((FIXTURES / "stream_error.txt").read_bytes()):
            translator.feed(sse)
    assert (info.value.upstream_status, info.value.http_status, info.value.code) == (503, 502, "UNAVAILABLE")
    assert info.value.message == "The model is overloaded. Please try again later."


def test_blocked_prompt_in_stream_ends_with_content_filter() -> None:
    """A streamed blocked prompt gives a role chunk and a content_filter finish, then completes."""
    translator = make_adapter().stream_translator(chat({"messages": HELLO, "stream": True}))
    frames = translator.feed(event({"promptFeedback": {"blockReason": "SAFETY"}, "responseId": "r"}))
    chunks = decode_frames(frames)
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, "content_filter"]
    assert translator.finish() == [DONE_FRAME]


def test_streamed_candidates_keep_their_own_index_and_finish() -> None:
    """With n > 1, chunks carry each candidate's index and the stream completes when all have finished."""
    translator = make_adapter().stream_translator(chat({"messages": HELLO, "stream": True}))
    text = {"role": "model", "parts": [{"text": "x"}]}
    translator.feed(event({"candidates": [{"content": text, "index": 0}, {"content": text, "index": 1}]}))
    translator.feed(event({"candidates": [{"content": text, "index": 0, "finishReason": "STOP"}]}))
    with pytest.raises(UpstreamProtocolError):
        translator.finish()
    frames = translator.feed(
        event({"candidates": [{"content": text, "index": 1, "finishReason": "MAX_TOKENS"}]})
    )
    assert decode_frames(frames)[-1]["choices"][0] == {
        "index": 1,
        "delta": {},
        "logprobs": None,
        "finish_reason": "length",
    }
    assert translator.finish() == [DONE_FRAME]


def test_non_json_stream_event_is_a_protocol_error() -> None:
    """A stream event whose data is not JSON raises UpstreamProtocolError."""
    translator = make_adapter().stream_translator(chat({"messages": HELLO, "stream": True}))
    with pytest.raises(UpstreamProtocolError):
        translator.feed(SSEEvent("message", b"[{"))


# --- errors -----------------------------------------------------------------------------------


def google(code: int, status: str, message: str, details: list[Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return {"error": error}


@pytest.mark.parametrize(
    ("status", "name", "http_status", "error_type"),
    [
        (400, "INVALID_ARGUMENT", 400, "invalid_request_error"),
        (401, "UNAUTHENTICATED", 401, "authentication_error"),
        (403, "PERMISSION_DENIED", 403, "permission_error"),
        (404, "NOT_FOUND", 404, "invalid_request_error"),
        (429, "RESOURCE_EXHAUSTED", 429, "rate_limit_error"),
        (500, "INTERNAL", 502, "api_error"),
        (503, "UNAVAILABLE", 502, "api_error"),
    ],
)
def test_google_errors_map_to_our_tree(status: int, name: str, http_status: int, error_type: str) -> None:
    """Google's error envelope keeps its status and message; 5xx become 502; the status name is the code."""
    error = make_adapter().map_error(reply(google(status, name, f"{name} happened"), status))
    assert isinstance(error, UpstreamStatusError)
    assert (error.http_status, error.error_type, error.code, error.message) == (
        http_status,
        error_type,
        name,
        f"{name} happened",
    )


def test_error_info_reason_becomes_the_code() -> None:
    """An ErrorInfo reason (API_KEY_INVALID) is a more useful code than the generic status."""
    details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]
    error = make_adapter().map_error(
        reply(google(400, "INVALID_ARGUMENT", "API key not valid.", details), 400)
    )
    assert error.code == "API_KEY_INVALID"


def test_429_keeps_retry_after_and_turns_retry_info_into_it() -> None:
    """A 429 keeps the retry-after header; without one, RetryInfo's retryDelay becomes retry-after."""
    details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12.2s"}]
    body = google(429, "RESOURCE_EXHAUSTED", "quota", details)
    with_header = make_adapter().map_error(reply(body, 429, {"Retry-After": "7", "x-other": "1"}))
    assert with_header.headers == {"retry-after": "7"}
    from_details = make_adapter().map_error(reply(body, 429))
    assert from_details.headers == {"retry-after": "13"}
    assert isinstance(from_details, UpstreamStatusError) and from_details.is_retryable


def test_error_wrapped_in_a_list_and_non_json_errors_are_readable() -> None:
    """A one-element list envelope is unwrapped; an HTML body becomes a message naming the status."""
    wrapped = make_adapter().map_error(reply([google(404, "NOT_FOUND", "no such model")], 404))
    assert (wrapped.message, wrapped.code) == ("no such model", "NOT_FOUND")
    html = make_adapter().map_error(reply(b"<html><body>502 Bad Gateway</body></html>", 502))
    assert html.message == "the provider returned HTTP 502: <html><body>502 Bad Gateway</body></html>"


# --- embeddings -------------------------------------------------------------------------------


def embeddings_request(inputs: list[Any], dimensions: int | None = None) -> EmbeddingsRequest:
    body: dict[str, Any] = {"model": "emb", "input": inputs}
    return EmbeddingsRequest(body=body, model="emb", inputs=inputs, dimensions=dimensions)


def test_embeddings_use_batch_embed_contents_with_dimensions() -> None:
    """Inputs become batchEmbedContents requests repeating the model, with outputDimensionality when asked."""
    adapter = make_adapter(model="gemini-embedding-001")
    assert EMBEDDINGS in adapter.capabilities
    upstream = adapter.build_embeddings_request(embeddings_request(["a", "b"], dimensions=256))
    assert upstream.url.endswith("/v1beta/models/gemini-embedding-001:batchEmbedContents")
    assert orjson.loads(upstream.body) == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": t}]},
                "outputDimensionality": 256,
            }
            for t in ("a", "b")
        ]
    }


def test_embeddings_reply_gives_vectors_and_estimated_usage() -> None:
    """Vectors come back in order; with no counts in the reply, usage is estimated from the text."""
    request = embeddings_request(["hello world", "x"])
    result = make_adapter().parse_embeddings_response(
        request, reply({"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}]})
    )
    assert result.vectors == [[0.1, 0.2], [0.3, 0.4]]
    assert result.usage is not None and result.usage.prompt_tokens == 3 + 1


def test_embeddings_of_token_ids_get_400_and_count_mismatch_is_protocol_error() -> None:
    """Token-id inputs are refused; a reply with the wrong number of vectors is a protocol error."""
    with pytest.raises(InvalidRequestError):
        make_adapter().build_embeddings_request(embeddings_request([[1, 2, 3]]))
    with pytest.raises(UpstreamProtocolError):
        make_adapter().parse_embeddings_response(
            embeddings_request(["a", "b"]), reply({"embeddings": [{"values": [1.0]}]})
        )
