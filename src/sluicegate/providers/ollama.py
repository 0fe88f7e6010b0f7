"""Ollama native API: OpenAI Chat Completions translated to `POST /api/chat` (and `/api/embed`) and back.

Requests are rewritten per reference §6.1: content becomes one string per message, data-URL
images become base64 strings in `images`, tool-call arguments become JSON objects, a tool result
carries the `tool_name` of the call it answers (found by its `tool_call_id` in the history),
sampling parameters and `max_tokens` move into `options` (`num_predict`), and `response_format`
becomes `format` (`"json"` or the schema). `stream` is always sent, because Ollama streams when it
is absent. Streams are NDJSON (one object per line, `NDJSONDecoder`), rebuilt as OpenAI
`chat.completion.chunk` frames. Ollama gives tool calls no ids, so the gateway mints them.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import GatewayError, InvalidRequestError, UpstreamProtocolError, UpstreamStatusError
from ..types import (
    ChatRequest,
    ChatResponse,
    EmbeddingsRequest,
    EmbeddingsResponse,
    UpstreamReply,
    UpstreamRequest,
    Usage,
)
from ..upstream.ndjson import NDJSONDecoder
from ._translate import (
    ChunkStream,
    assistant_message,
    chat_response,
    choice,
    content_parts,
    error_json,
    event_json,
    image_url,
    int_or_zero,
    invalid_response_format_type,
    iter_function_tools,
    iter_messages,
    iter_tool_calls,
    json_schema,
    max_tokens,
    object_schema,
    parse_data_url,
    part_text,
    proxy_message,
    reply_json,
    requested,
    require_text_inputs,
    response_format_object,
    stop_sequences,
    tool_arguments,
    tool_call_delta,
    tool_call_id,
    unsupported_role,
)
from .base import ALL_CHAT, EMBEDDINGS, Adapter, StreamDecoder, StreamTranslator, retry_hint_headers

if TYPE_CHECKING:
    from ..config.schema import ModelEntry
    from ..upstream.sse import SSEEvent

_DEFAULT_API_BASE = "http://127.0.0.1:11434"
# Between the text parts of one message: Ollama's content is a single string.
_PART_JOINER = "\n"

# Ollama `done_reason` -> OpenAI (reference §8); a turn with tool calls is `tool_calls` whatever it says.
_FINISH_REASONS = {"stop": "stop", "length": "length"}

# OpenAI parameters Ollama's native chat cannot honour. A neutral value (n: 1, false, 0, {}) asks
# for nothing, so it is dropped rather than refused.
_UNSUPPORTED = ("n", "logprobs", "top_logprobs", "logit_bias")
# OpenAI sampling parameters that are Ollama options under the same name.
_SAME_NAME_OPTIONS = ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty", "top_k")
# `reasoning_effort` values Ollama's `think` takes as a level (gpt-oss); other models take true.
_THINK_LEVELS = ("low", "medium", "high")


def _call_id() -> str:
    return "call_" + secrets.token_hex(12)


def _usage(payload: dict[str, Any]) -> Usage:
    # `prompt_eval_count` is left out when the whole prompt came from Ollama's cache: 0 then.
    return Usage(
        prompt_tokens=int_or_zero(payload.get("prompt_eval_count")),
        completion_tokens=int_or_zero(payload.get("eval_count")),
    )


def _finish_reason(done_reason: Any, has_tool_calls: bool) -> str:
    if has_tool_calls:
        return "tool_calls"  # Ollama says "stop" on tool-call turns
    return _FINISH_REASONS.get(done_reason, "stop") if isinstance(done_reason, str) else "stop"


def _error_from_body(
    body: Any, status: int, headers: Mapping[str, str], fallback: str | None = None
) -> UpstreamStatusError:
    """Ollama's `{"error": "message"}` (a plain string) -> UpstreamStatusError.

    The OpenAI error type follows from the status (errors.py), as for every non-OpenAI provider.
    """
    message = body.get("error") if isinstance(body, dict) else None
    if not isinstance(message, str) or not message:
        message = None
    code = None
    if status == 404 and message and "not found" in message:
        code = "model_not_found"  # the one 404 Ollama's chat gives: the model is not pulled
    return UpstreamStatusError(
        message or fallback or f"the provider returned HTTP {status}",
        upstream_status=status,
        code=code,
        headers=retry_hint_headers(headers),
    )


# ---------------------------------------------------------------------------------------------
# Request: OpenAI messages -> Ollama messages


def _image(part: dict[str, Any], where: str) -> str:
    """A data-URL image part -> the bare base64 string Ollama takes in `images`."""
    param = f"{where}.image_url.url"
    url, _ = image_url(part, param)
    if url.startswith(("http://", "https://")):
        # Ollama takes image bytes only, and the gateway never fetches a caller's URL (no SSRF).
        raise InvalidRequestError(
            f"{param}: provider ollama takes images only as base64 data URLs "
            "(data:<media type>;base64,<data>), not http(s) URLs",
            param=param,
        )
    return parse_data_url(url, param)[1]


def _content(content: Any, where: str, *, images: list[str] | None = None) -> str:
    """OpenAI content -> one string; image parts go to `images` when the role may carry them."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts = []
    for at, part in content_parts(content, where):
        if images is not None and isinstance(part, dict) and part.get("type") == "image_url":
            images.append(_image(part, at))
        else:
            text = part_text(part, at)
            if text:
                texts.append(text)
    return _PART_JOINER.join(texts)


def _assistant(message: dict[str, Any], where: str, names: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant", "content": _content(message.get("content"), where)}
    tool_calls = message.get("tool_calls")
    if not tool_calls:
        return out
    calls = []
    for call in iter_tool_calls(tool_calls, where):
        if isinstance(call.id, str):
            names[call.id] = call.name
        arguments = tool_arguments(call.arguments, f"{call.at}.function.arguments")
        calls.append({"function": {"name": call.name, "arguments": arguments}})
    out["tool_calls"] = calls
    return out


def _tool(message: dict[str, Any], where: str, names: dict[str, str]) -> dict[str, Any]:
    call_id = tool_call_id(message, where)
    name = names.get(call_id)
    if name is None:
        # Ollama links a result to its call by function name; without the call there is no name.
        raise InvalidRequestError(
            f"{where}.tool_call_id: {call_id!r} answers no tool call of an earlier assistant message",
            param=f"{where}.tool_call_id",
        )
    return {"role": "tool", "content": _content(message.get("content"), where), "tool_name": name}


def _translate_messages(messages: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_call_id -> function name, from the assistant turns seen so far
    for where, message, role in iter_messages(messages):
        if role in ("system", "developer"):
            out.append({"role": "system", "content": _content(message.get("content"), where)})
        elif role == "user":
            images: list[str] = []
            entry: dict[str, Any] = {
                "role": "user",
                "content": _content(message.get("content"), where, images=images),
            }
            if images:
                entry["images"] = images
            out.append(entry)
        elif role == "assistant":
            out.append(_assistant(message, where, names))
        elif role == "tool":
            out.append(_tool(message, where, names))
        else:
            raise unsupported_role(role, where)
    return out


def _tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for tool in iter_function_tools(tools):
        entry: dict[str, Any] = {"name": tool.name}
        if tool.description is not None:
            entry["description"] = tool.description
        entry["parameters"] = object_schema(tool.parameters)
        out.append({"type": "function", "function": entry})
    return out


def _format(value: Any) -> str | dict[str, Any] | None:
    kind = response_format_object(value).get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        return json_schema(value)
    raise invalid_response_format_type()


def _tool_call_items(calls: Any, first_index: int) -> list[dict[str, Any]]:
    """Ollama tool calls (object arguments, no ids) -> OpenAI tool calls with minted ids."""
    items: list[dict[str, Any]] = []
    for call in calls if isinstance(calls, list) else []:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        arguments = function.get("arguments")
        encoded = arguments if isinstance(arguments, str) else orjson.dumps(arguments or {}).decode()
        call_id = call.get("id")  # newer servers may send one; keep it when they do
        minted = call_id if isinstance(call_id, str) and call_id else _call_id()
        items.append(tool_call_delta(first_index + len(items), minted, function.get("name"), encoded))
    return items


def _stream_error(payload: dict[str, Any]) -> UpstreamStatusError:
    error = payload.get("error")
    message = error if isinstance(error, str) and error else "the provider reported an error in the stream"
    return UpstreamStatusError(message, upstream_status=500, upstream_type="api_error")


# ---------------------------------------------------------------------------------------------
# Stream: Ollama NDJSON lines -> OpenAI chunks


class OllamaStream(ChunkStream):
    """One `/api/chat` stream rebuilt as `chat.completion.chunk` frames.

    Every line is `{"message": {...}, "done": false}` until the last, `done: true` with the counts;
    a line `{"error": "..."}` after HTTP 200 is a failure. Thinking text is dropped: OpenAI Chat has
    no standard field for it.
    """

    __slots__ = ("_started", "_tool_calls")

    def __init__(self, model: str, include_usage: bool) -> None:
        super().__init__("chatcmpl-" + secrets.token_hex(12), model, include_usage)  # Ollama has no reply id
        self._tool_calls = 0
        self._started = False

    def feed(self, event: SSEEvent) -> list[bytes]:
        if self.finished:
            return []
        payload = event_json(event.data, "line")
        if "error" in payload:
            raise _stream_error(payload)
        frames: list[bytes] = []
        if not self._started:
            self._started = True
            frames.append(self.chunk({"role": "assistant", "content": ""}))
        message = payload.get("message")
        if isinstance(message, dict):
            text = message.get("content")
            if isinstance(text, str) and text:
                frames.append(self.chunk({"content": text}))
            calls = _tool_call_items(message.get("tool_calls"), self._tool_calls)
            for call in calls:
                frames.append(self.chunk({"tool_calls": [call]}))
            self._tool_calls += len(calls)
        if payload.get("done") is True:
            self.usage = _usage(payload)
            frames.append(self.chunk({}, _finish_reason(payload.get("done_reason"), self._tool_calls > 0)))
            frames.extend(self.closing())
        return frames


# ---------------------------------------------------------------------------------------------
# The adapter


class OllamaAdapter(Adapter):
    provider = "ollama"
    capabilities = ALL_CHAT | {EMBEDDINGS}

    def __init__(self, entry: ModelEntry) -> None:
        super().__init__(entry)
        base = (entry.api_base or _DEFAULT_API_BASE).rstrip("/")
        base = base.removesuffix("/api")  # accept the server root with or without /api
        self.url = f"{base}/api/chat"
        self.embed_url = f"{base}/api/embed"
        headers = {"content-type": "application/json", "accept-encoding": "identity"}
        if entry.api_key:
            # Ollama itself takes no key; one set here is for a proxy in front of it or ollama.com.
            headers["authorization"] = f"Bearer {entry.api_key}"
        headers.update(entry.headers)
        self.headers = headers
        self.model_id = entry.upstream_model

    def stream_decoder(self) -> StreamDecoder:
        return NDJSONDecoder()

    def build_request(self, request: ChatRequest) -> UpstreamRequest:
        return UpstreamRequest("POST", self.url, self.headers, orjson.dumps(self.translate_body(request)))

    def translate_body(self, request: ChatRequest) -> dict[str, Any]:
        """The Ollama request body for an OpenAI Chat Completions body; `request.body` is not modified."""
        body = request.body
        for name in requested(body, _UNSUPPORTED):
            self.refuse(request, name)

        # `stream` always goes out: Ollama streams when it is absent.
        out: dict[str, Any] = {
            "model": self.model_id,
            "messages": _translate_messages(body.get("messages")),
            "stream": request.stream,
        }
        options: dict[str, Any] = {}
        for name in _SAME_NAME_OPTIONS:
            if body.get(name) is not None:
                options[name] = body[name]
        limit = max_tokens(body, self.entry.default_max_tokens)
        if limit is not None:
            options["num_predict"] = limit
        stop = stop_sequences(body)
        if stop is not None:
            options["stop"] = stop
        native = body.get("options")
        if isinstance(native, dict):
            # Ollama's own options (num_ctx, repeat_penalty, ...) through `extra_body`; they are the
            # caller's explicit choice for this server, so they win over the translated ones.
            options.update(native)
        if options:
            out["options"] = options

        tools = body.get("tools")
        choice = body.get("tool_choice")
        if choice == "required" or isinstance(choice, dict):
            self.refuse(request, "tool_choice")  # Ollama cannot force a tool call
        if body.get("parallel_tool_calls") is False and tools:
            self.refuse(request, "parallel_tool_calls")
        if tools is not None and choice != "none":
            # tool_choice "none" is met exactly by offering no tools: Ollama has no tool_choice.
            translated = _tools(tools)
            if translated:
                out["tools"] = translated
        response_format = body.get("response_format")
        if response_format is not None:
            fmt = _format(response_format)
            if fmt is not None:
                out["format"] = fmt
        effort = body.get("reasoning_effort")
        if isinstance(effort, str):
            out["think"] = effort if effort in _THINK_LEVELS else effort not in ("none", "minimal")
        for name in ("think", "keep_alive"):
            if body.get(name) is not None:
                out[name] = body[name]
        return out

    def parse_response(self, request: ChatRequest, reply: UpstreamReply) -> ChatResponse:
        body = reply_json(reply)
        if isinstance(body, dict) and "error" in body:
            raise _stream_error(body)
        if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
            raise UpstreamProtocolError("the provider's reply is not an /api/chat response")
        raw = body["message"]
        text = raw.get("content") if isinstance(raw.get("content"), str) else ""
        tool_calls = _tool_call_items(raw.get("tool_calls"), 0)
        for call in tool_calls:
            del call["index"]  # only stream deltas carry an index
        message = assistant_message([text] if text else [], tool_calls)
        finish = _finish_reason(body.get("done_reason"), bool(tool_calls))
        return chat_response(
            "chatcmpl-" + secrets.token_hex(12),  # Ollama has no reply id
            self.model_id,
            [choice(message, finish)],
            _usage(body),
        )

    def stream_translator(self, request: ChatRequest) -> StreamTranslator:
        return OllamaStream(self.model_id, request.include_usage)

    def map_error(self, reply: UpstreamReply) -> GatewayError:
        body = error_json(reply.body)
        # Not a dict: unknown paths get Go's plain-text "404 page not found"; proxies answer in HTML.
        fallback = None if isinstance(body, dict) else proxy_message(reply.status, reply.body)
        return _error_from_body(body, reply.status, reply.headers, fallback)

    # -- embeddings ------------------------------------------------------------------------------

    def build_embeddings_request(self, request: EmbeddingsRequest) -> UpstreamRequest:
        texts = require_text_inputs(request, self.entry.provider)
        out: dict[str, Any] = {"model": self.model_id, "input": texts}
        if request.dimensions is not None:
            out["dimensions"] = request.dimensions
        body = request.body
        for name in ("truncate", "keep_alive", "options"):
            if body.get(name) is not None:
                out[name] = body[name]
        return UpstreamRequest("POST", self.embed_url, self.headers, orjson.dumps(out))

    def parse_embeddings_response(
        self, request: EmbeddingsRequest, reply: UpstreamReply
    ) -> EmbeddingsResponse:
        body = reply_json(reply)
        vectors = body.get("embeddings") if isinstance(body, dict) else None
        if not isinstance(vectors, list) or len(vectors) != len(request.inputs):
            raise UpstreamProtocolError("the provider's embed reply does not have one vector per input")
        return EmbeddingsResponse(
            vectors=vectors, usage=Usage(prompt_tokens=int_or_zero(body.get("prompt_eval_count")))
        )
