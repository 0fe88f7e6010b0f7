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
import time
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
from .base import (
    ALL_CHAT,
    DONE_FRAME,
    EMBEDDINGS,
    Adapter,
    StreamDecoder,
    StreamTranslator,
    loads_lenient,
    retry_hint_headers,
    sse_frame,
)

if TYPE_CHECKING:
    from ..config.schema import ModelEntry
    from ..upstream.sse import SSEEvent

_DEFAULT_API_BASE = "http://127.0.0.1:11434"
# Between the text parts of one message: Ollama's content is a single string.
_PART_JOINER = "\n"

# Ollama `done_reason` -> OpenAI (reference §8); a turn with tool calls is `tool_calls` whatever it says.
_FINISH_REASONS = {"stop": "stop", "length": "length"}

# OpenAI parameters Ollama's native chat cannot honour. A neutral value (false, 0, {}) asks for
# nothing, so it is dropped rather than refused.
_UNSUPPORTED = ("logprobs", "top_logprobs", "logit_bias")
# OpenAI sampling parameters that are Ollama options under the same name.
_SAME_NAME_OPTIONS = ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty", "top_k")
# `reasoning_effort` values Ollama's `think` takes as a level (gpt-oss); other models take true.
_THINK_LEVELS = ("low", "medium", "high")


def _call_id() -> str:
    return "call_" + secrets.token_hex(12)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _usage(payload: dict[str, Any]) -> Usage:
    # `prompt_eval_count` is left out when the whole prompt came from Ollama's cache: 0 then.
    return Usage(
        prompt_tokens=_count(payload.get("prompt_eval_count")),
        completion_tokens=_count(payload.get("eval_count")),
    )


def _finish_reason(done_reason: Any, has_tool_calls: bool) -> str:
    if has_tool_calls:
        return "tool_calls"  # Ollama says "stop" on tool-call turns
    return _FINISH_REASONS.get(done_reason, "stop") if isinstance(done_reason, str) else "stop"


def _openai_error_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    if 400 <= status < 500:
        return "invalid_request_error"
    return "api_error"


def _error_from_body(
    body: Any, status: int, headers: Mapping[str, str], fallback: str | None = None
) -> UpstreamStatusError:
    """Ollama's `{"error": "message"}` (a plain string) -> UpstreamStatusError."""
    message = body.get("error") if isinstance(body, dict) else None
    if not isinstance(message, str) or not message:
        message = None
    code = None
    if status == 404 and message and "not found" in message:
        code = "model_not_found"  # the one 404 Ollama's chat gives: the model is not pulled
    return UpstreamStatusError(
        message or fallback or f"the provider returned HTTP {status}",
        upstream_status=status,
        upstream_type=_openai_error_type(status),
        code=code,
        headers=retry_hint_headers(headers),
    )


# ---------------------------------------------------------------------------------------------
# Request: OpenAI messages -> Ollama messages


def _text(part: Any, where: str) -> str:
    if not isinstance(part, dict) or part.get("type") not in ("text", "refusal"):
        kind = part.get("type") if isinstance(part, dict) else type(part).__name__
        raise InvalidRequestError(
            f"{where}.type: content part {kind!r} is not supported here", param=f"{where}.type"
        )
    text = part.get("text") if part["type"] == "text" else part.get("refusal")
    if not isinstance(text, str):
        raise InvalidRequestError(f"{where}: a text part needs a string 'text'", param=where)
    return text


def _image(part: dict[str, Any], where: str) -> str:
    """A data-URL image part -> the bare base64 string Ollama takes in `images`."""
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    param = f"{where}.image_url.url"
    if not isinstance(url, str):
        raise InvalidRequestError(f"{param} must be a string", param=param)
    if url.startswith(("http://", "https://")):
        # Ollama takes image bytes only, and the gateway never fetches a caller's URL (no SSRF).
        raise InvalidRequestError(
            f"{param}: provider ollama takes images only as base64 data URLs "
            "(data:<media type>;base64,<data>), not http(s) URLs",
            param=param,
        )
    header, comma, data = url[5:].partition(",") if url.startswith("data:") else ("", "", "")
    if not comma or not header.endswith(";base64"):
        raise InvalidRequestError(
            f"{param}: a data URL must look like data:<media type>;base64,<data>", param=param
        )
    return data


def _content(content: Any, where: str, *, images: list[str] | None = None) -> str:
    """OpenAI content -> one string; image parts go to `images` when the role may carry them."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequestError(
            f"{where}.content must be a string or an array of parts", param=f"{where}.content"
        )
    texts = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        if images is not None and isinstance(part, dict) and part.get("type") == "image_url":
            images.append(_image(part, at))
        else:
            text = _text(part, at)
            if text:
                texts.append(text)
    return _PART_JOINER.join(texts)


def _arguments(arguments: Any, where: str) -> dict[str, Any]:
    """OpenAI's JSON-string arguments -> the object Ollama wants."""
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}  # models emit "" for functions without parameters
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str | bytes) else None
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"{where} is not valid JSON", param=where) from exc
    if not isinstance(parsed, dict):
        raise InvalidRequestError(f"{where} must be a JSON object", param=where)
    return parsed


def _assistant(message: dict[str, Any], where: str, names: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant", "content": _content(message.get("content"), where)}
    tool_calls = message.get("tool_calls")
    if not tool_calls:
        return out
    if not isinstance(tool_calls, list):
        raise InvalidRequestError(f"{where}.tool_calls must be an array", param=f"{where}.tool_calls")
    calls = []
    for k, call in enumerate(tool_calls):
        at = f"{where}.tool_calls[{k}]"
        if not isinstance(call, dict):
            raise InvalidRequestError(f"{at} must be an object", param=at)
        function = call.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequestError(f"{at}.function.name is required", param=f"{at}.function.name")
        if isinstance(call.get("id"), str):
            names[call["id"]] = function["name"]
        arguments = _arguments(function.get("arguments"), f"{at}.function.arguments")
        calls.append({"function": {"name": function["name"], "arguments": arguments}})
    out["tool_calls"] = calls
    return out


def _tool(message: dict[str, Any], where: str, names: dict[str, str]) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str):
        raise InvalidRequestError(f"{where}.tool_call_id is required", param=f"{where}.tool_call_id")
    name = names.get(call_id)
    if name is None:
        # Ollama links a result to its call by function name; without the call there is no name.
        raise InvalidRequestError(
            f"{where}.tool_call_id: {call_id!r} answers no tool call of an earlier assistant message",
            param=f"{where}.tool_call_id",
        )
    return {"role": "tool", "content": _content(message.get("content"), where), "tool_name": name}


def _translate_messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list):
        raise InvalidRequestError("'messages' must be an array of message objects", param="messages")
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_call_id -> function name, from the assistant turns seen so far
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequestError(f"{where} must be an object", param=where)
        role = message.get("role")
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
            raise InvalidRequestError(f"{where}.role: unsupported role {role!r}", param=f"{where}.role")
    return out


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise InvalidRequestError("'tools' must be an array", param="tools")
    out = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise InvalidRequestError(
                f"{where}.type: only function tools are supported", param=f"{where}.type"
            )
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequestError(f"{where}.function.name is required", param=f"{where}.function.name")
        entry: dict[str, Any] = {"name": function["name"]}
        if function.get("description") is not None:
            entry["description"] = function["description"]
        schema = function.get("parameters")
        entry["parameters"] = (
            schema if isinstance(schema, dict) and schema else {"type": "object", "properties": {}}
        )
        out.append({"type": "function", "function": entry})
    return out


def _format(value: Any) -> str | dict[str, Any] | None:
    if not isinstance(value, dict):
        raise InvalidRequestError("'response_format' must be an object", param="response_format")
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        spec = value.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise InvalidRequestError(
                "response_format.json_schema.schema must be an object",
                param="response_format.json_schema.schema",
            )
        return schema
    raise InvalidRequestError(
        "response_format.type must be 'text', 'json_object' or 'json_schema'", param="response_format.type"
    )


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
        items.append(
            {
                "index": first_index + len(items),
                "id": call_id if isinstance(call_id, str) and call_id else _call_id(),
                "type": "function",
                "function": {"name": function.get("name"), "arguments": encoded},
            }
        )
    return items


def _stream_error(payload: dict[str, Any]) -> UpstreamStatusError:
    error = payload.get("error")
    message = error if isinstance(error, str) and error else "the provider reported an error in the stream"
    return UpstreamStatusError(message, upstream_status=500, upstream_type="api_error")


# ---------------------------------------------------------------------------------------------
# Stream: Ollama NDJSON lines -> OpenAI chunks


class OllamaStream(StreamTranslator):
    """One `/api/chat` stream rebuilt as `chat.completion.chunk` frames.

    Every line is `{"message": {...}, "done": false}` until the last, `done: true` with the counts;
    a line `{"error": "..."}` after HTTP 200 is a failure. Thinking text is dropped: OpenAI Chat has
    no standard field for it.
    """

    __slots__ = ("_started", "_tool_calls", "created", "id", "include_usage", "model")

    def __init__(self, model: str, include_usage: bool) -> None:
        self.usage: Usage | None = None
        self.finished = False
        self.include_usage = include_usage
        self.id = "chatcmpl-" + secrets.token_hex(12)  # Ollama has no reply id
        self.created = int(time.time())
        self.model = model
        self._tool_calls = 0
        self._started = False

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self.include_usage:
            chunk["usage"] = None  # as OpenAI does on every chunk but the usage one
        return sse_frame(orjson.dumps(chunk))

    def feed(self, event: SSEEvent) -> list[bytes]:
        if self.finished:
            return []
        try:
            payload = loads_lenient(event.data)
        except orjson.JSONDecodeError as exc:
            raise UpstreamProtocolError("the provider sent a stream line that is not JSON") from exc
        if not isinstance(payload, dict):
            raise UpstreamProtocolError("the provider sent a stream line that is not a JSON object")
        if "error" in payload:
            raise _stream_error(payload)
        frames: list[bytes] = []
        if not self._started:
            self._started = True
            frames.append(self._chunk({"role": "assistant", "content": ""}))
        message = payload.get("message")
        if isinstance(message, dict):
            text = message.get("content")
            if isinstance(text, str) and text:
                frames.append(self._chunk({"content": text}))
            calls = _tool_call_items(message.get("tool_calls"), self._tool_calls)
            for call in calls:
                frames.append(self._chunk({"tool_calls": [call]}))
            self._tool_calls += len(calls)
        if payload.get("done") is True:
            self.finished = True
            self.usage = _usage(payload)
            frames.append(self._chunk({}, _finish_reason(payload.get("done_reason"), self._tool_calls > 0)))
            if self.include_usage:
                chunk = {
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": self.usage.to_openai(),
                }
                frames.append(sse_frame(orjson.dumps(chunk)))
            frames.append(DONE_FRAME)
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

    def _refuse(self, request: ChatRequest, name: str) -> None:
        if not self.entry.drop_params:
            raise InvalidRequestError(
                f"parameter '{name}' is not supported by model '{request.model}' "
                f"(provider ollama); remove it or set drop_params: true",
                param=name,
                code="unsupported_parameter",
            )

    def build_request(self, request: ChatRequest) -> UpstreamRequest:
        return UpstreamRequest("POST", self.url, self.headers, orjson.dumps(self.translate_body(request)))

    def translate_body(self, request: ChatRequest) -> dict[str, Any]:
        """The Ollama request body for an OpenAI Chat Completions body; `request.body` is not modified."""
        body = request.body
        n = body.get("n")
        if isinstance(n, int) and n > 1:
            self._refuse(request, "n")
        for name in _UNSUPPORTED:
            if body.get(name):
                self._refuse(request, name)

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
        max_tokens = body.get("max_completion_tokens")
        if max_tokens is None:
            max_tokens = body.get("max_tokens")
        if max_tokens is None:
            max_tokens = self.entry.default_max_tokens
        if max_tokens is not None:
            options["num_predict"] = max_tokens
        stop = body.get("stop")
        if isinstance(stop, str):
            options["stop"] = [stop]
        elif isinstance(stop, list) and stop:
            options["stop"] = list(stop)
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
            self._refuse(request, "tool_choice")  # Ollama cannot force a tool call
        if body.get("parallel_tool_calls") is False and tools:
            self._refuse(request, "parallel_tool_calls")
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
        try:
            body = loads_lenient(reply.body)
        except orjson.JSONDecodeError as exc:
            raise UpstreamProtocolError("the provider's reply is not JSON") from exc
        if isinstance(body, dict) and "error" in body:
            raise _stream_error(body)
        if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
            raise UpstreamProtocolError("the provider's reply is not an /api/chat response")
        raw = body["message"]
        text = raw.get("content") if isinstance(raw.get("content"), str) else ""
        tool_calls = _tool_call_items(raw.get("tool_calls"), 0)
        for call in tool_calls:
            del call["index"]  # only stream deltas carry an index
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if tool_calls and not text else text,
            "refusal": None,
        }
        if tool_calls:
            message["tool_calls"] = tool_calls
        finish = _finish_reason(body.get("done_reason"), bool(tool_calls))
        usage = _usage(body)
        response: dict[str, Any] = {
            "id": "chatcmpl-" + secrets.token_hex(12),  # Ollama has no reply id
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_id,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": usage.to_openai(),
        }
        return ChatResponse(content=orjson.dumps(response), usage=usage, finish_reason=finish)

    def stream_translator(self, request: ChatRequest) -> StreamTranslator:
        return OllamaStream(self.model_id, request.include_usage)

    def map_error(self, reply: UpstreamReply) -> GatewayError:
        try:
            body: Any = loads_lenient(reply.body) if reply.body.strip() else None
        except orjson.JSONDecodeError:
            body = None
        fallback = None
        if not isinstance(body, dict):
            # Unknown paths get Go's plain-text "404 page not found"; proxies answer in HTML.
            text = " ".join(reply.body[:1000].decode("utf-8", "replace").split())[:300]
            fallback = f"the provider returned HTTP {reply.status}" + (f": {text}" if text else "")
        return _error_from_body(body, reply.status, reply.headers, fallback)

    # -- embeddings ------------------------------------------------------------------------------

    def build_embeddings_request(self, request: EmbeddingsRequest) -> UpstreamRequest:
        if not all(isinstance(text, str) for text in request.inputs):
            raise InvalidRequestError(
                f"model '{request.model}' (provider ollama) takes text input only, not token ids",
                param="input",
            )
        out: dict[str, Any] = {"model": self.model_id, "input": request.inputs}
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
        try:
            body = loads_lenient(reply.body)
        except orjson.JSONDecodeError as exc:
            raise UpstreamProtocolError("the provider's reply is not JSON") from exc
        vectors = body.get("embeddings") if isinstance(body, dict) else None
        if not isinstance(vectors, list) or len(vectors) != len(request.inputs):
            raise UpstreamProtocolError("the provider's embed reply does not have one vector per input")
        return EmbeddingsResponse(
            vectors=vectors, usage=Usage(prompt_tokens=_count(body.get("prompt_eval_count")))
        )
