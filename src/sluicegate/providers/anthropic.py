"""Anthropic Messages API: OpenAI Chat Completions translated to `POST /v1/messages` and back.

Requests are rewritten per reference §3.5: system and developer messages become the top-level
`system`, the rest become alternating user/assistant turns of content blocks, tool calls and
tool results become `tool_use` / `tool_result` blocks, and a `max_tokens` is always supplied.
Replies and stream events are rebuilt as OpenAI `chat.completion` objects and
`chat.completion.chunk` frames, with usage normalised so prompt tokens include cache reads and
writes. OpenAI parameters with no Anthropic equivalent get a 400 naming them, or are dropped
when the model entry sets `drop_params: true`; other keys Anthropic has no use for (`store`,
`metadata`, `stream_options`, ...) are left out silently because they change nothing the caller sees.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import GatewayError, InvalidRequestError, UpstreamProtocolError, UpstreamStatusError
from ..types import ChatRequest, ChatResponse, UpstreamReply, UpstreamRequest, Usage
from .base import DONE_FRAME, Adapter, StreamTranslator, loads_lenient, retry_hint_headers, sse_frame

if TYPE_CHECKING:
    from ..config.schema import ModelEntry
    from ..upstream.sse import SSEEvent

_DEFAULT_API_BASE = "https://api.anthropic.com"
_API_VERSION = "2023-06-01"
_DEFAULT_MAX_TOKENS = 4096
# Paragraph break between system/developer messages joined into one `system` string.
_SYSTEM_JOINER = "\n\n"

# Anthropic `stop_reason` -> OpenAI `finish_reason` (reference §8).
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Anthropic error `type` -> the HTTP status it comes with (reference §3.4); used for `error`
# events inside a 200 stream, where the type is all we get.
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "conflict_error": 409,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

# OpenAI parameters with no Anthropic equivalent. A neutral value (false, 0, {}) asks for
# nothing, so it is dropped rather than refused; `seed` has no neutral value.
_UNSUPPORTED = ("logprobs", "top_logprobs", "logit_bias", "frequency_penalty", "presence_penalty", "seed")


def _finish_reason(stop_reason: Any) -> str:
    return _FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _usage(raw: Any) -> Usage | None:
    """Anthropic usage -> ours; its `input_tokens` excludes cache reads and writes, ours includes them."""
    if not isinstance(raw, dict):
        return None
    cache_write = _int(raw.get("cache_creation_input_tokens"))
    cache_read = _int(raw.get("cache_read_input_tokens"))
    return Usage(
        prompt_tokens=_int(raw.get("input_tokens")) + cache_write + cache_read,
        completion_tokens=_int(raw.get("output_tokens")),
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


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
    """`{"type":"error","error":{"type","message"}}` -> UpstreamStatusError; code = Anthropic's error type."""
    message: str | None = None
    code: str | None = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            raw_message, raw_type = err.get("message"), err.get("type")
            message = raw_message if isinstance(raw_message, str) and raw_message else None
            code = raw_type if isinstance(raw_type, str) else None
    kept = retry_hint_headers(headers)
    return UpstreamStatusError(
        message or fallback or f"the provider returned HTTP {status}",
        upstream_status=status,
        upstream_type=_openai_error_type(status),
        code=code,
        headers=kept,
    )


# ---------------------------------------------------------------------------------------------
# Request: OpenAI messages -> Anthropic system + turns


def _text_part(part: Any, where: str) -> dict[str, Any] | None:
    """An OpenAI text part as a text block (None when empty: Anthropic rejects empty text blocks)."""
    if not isinstance(part, dict) or part.get("type") not in ("text", "refusal"):
        kind = part.get("type") if isinstance(part, dict) else type(part).__name__
        raise InvalidRequestError(
            f"{where}.type: content part {kind!r} is not supported here", param=f"{where}.type"
        )
    text = part.get("text") if part["type"] == "text" else part.get("refusal")
    if not isinstance(text, str):
        raise InvalidRequestError(f"{where}: a text part needs a string 'text'", param=where)
    if not text:
        return None
    block: dict[str, Any] = {"type": "text", "text": text}
    # Not OpenAI, but callers targeting Claude send it to mark prompt-cache breakpoints.
    if "cache_control" in part:
        block["cache_control"] = part["cache_control"]
    return block


def _text_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    """String or text parts (system, developer, tool and assistant content) -> text blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequestError(
            f"{where}.content must be a string or an array of parts", param=f"{where}.content"
        )
    blocks = []
    for j, part in enumerate(content):
        block = _text_part(part, f"{where}.content[{j}]")
        if block is not None:
            blocks.append(block)
    return blocks


def _image_block(part: dict[str, Any], where: str) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise InvalidRequestError(f"{where}.image_url.url must be a string", param=f"{where}.image_url.url")
    if url.startswith("data:"):
        header, comma, data = url[5:].partition(",")
        if not comma or not header.endswith(";base64"):
            raise InvalidRequestError(
                f"{where}.image_url.url: a data URL must look like data:<media type>;base64,<data>",
                param=f"{where}.image_url.url",
            )
        media_type = header.partition(";")[0]
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequestError(
        f"{where}.image_url.url must be an http(s) URL or a base64 data URL", param=f"{where}.image_url.url"
    )


def _user_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, list):
        blocks = []
        for j, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") == "image_url":
                blocks.append(_image_block(part, f"{where}.content[{j}]"))
            else:
                block = _text_part(part, f"{where}.content[{j}]")
                if block is not None:
                    blocks.append(block)
        return blocks
    return _text_blocks(content, where)


def _tool_input(arguments: Any, where: str) -> dict[str, Any]:
    """OpenAI's JSON-string arguments -> Anthropic's `input` object."""
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


def _assistant_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    blocks = _text_blocks(message.get("content"), where)
    tool_calls = message.get("tool_calls")
    if tool_calls is None:
        return blocks
    if not isinstance(tool_calls, list):
        raise InvalidRequestError(f"{where}.tool_calls must be an array", param=f"{where}.tool_calls")
    for k, call in enumerate(tool_calls):
        at = f"{where}.tool_calls[{k}]"
        if not isinstance(call, dict):
            raise InvalidRequestError(f"{at} must be an object", param=at)
        function = call.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequestError(f"{at}.function.name is required", param=f"{at}.function.name")
        call_id = call.get("id")
        if not isinstance(call_id, str):
            raise InvalidRequestError(f"{at}.id is required", param=f"{at}.id")
        tool_input = _tool_input(function.get("arguments"), f"{at}.function.arguments")
        blocks.append({"type": "tool_use", "id": call_id, "name": function["name"], "input": tool_input})
    return blocks


def _tool_result_block(message: dict[str, Any], where: str) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str):
        raise InvalidRequestError(f"{where}.tool_call_id is required", param=f"{where}.tool_call_id")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    content = message.get("content")
    if isinstance(content, str):
        if content:
            block["content"] = content
    else:
        parts = _text_blocks(content, where)
        if parts:
            block["content"] = parts
    return block


def _translate_messages(messages: Any) -> tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """OpenAI `messages` -> (Anthropic `system`, Anthropic `messages`)."""
    if not isinstance(messages, list):
        raise InvalidRequestError("'messages' must be an array of message objects", param="messages")
    system: list[dict[str, Any]] = []
    system_is_plain = True
    turns: list[tuple[str, list[dict[str, Any]]]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequestError(f"{where} must be an object", param=where)
        role = message.get("role")
        if role in ("system", "developer"):
            system_is_plain = system_is_plain and isinstance(message.get("content"), str)
            system.extend(_text_blocks(message.get("content"), where))
            continue
        if role == "user":
            turn_role, blocks = "user", _user_blocks(message.get("content"), where)
        elif role == "assistant":
            turn_role, blocks = "assistant", _assistant_blocks(message, where)
        elif role == "tool":
            turn_role, blocks = "user", [_tool_result_block(message, where)]
        else:
            raise InvalidRequestError(f"{where}.role: unsupported role {role!r}", param=f"{where}.role")
        if not blocks:
            continue
        # Anthropic wants strictly alternating turns: same-role neighbours become one turn.
        if turns and turns[-1][0] == turn_role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((turn_role, blocks))

    out: list[dict[str, Any]] = []
    for role, blocks in turns:
        if role == "user":
            # tool_result blocks must open the user turn that answers the tool calls (stable sort).
            blocks.sort(key=lambda block: block["type"] != "tool_result")
        if len(blocks) == 1 and blocks[0].keys() == {"type", "text"}:
            out.append({"role": role, "content": blocks[0]["text"]})
        else:
            out.append({"role": role, "content": blocks})

    system_out: str | list[dict[str, Any]] | None = None
    if system:
        system_out = _SYSTEM_JOINER.join(block["text"] for block in system) if system_is_plain else system
    return system_out, out


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
        if not isinstance(schema, dict) or not schema:
            schema = {"type": "object", "properties": {}}
        elif "type" not in schema:
            schema = {"type": "object", **schema}  # Anthropic requires an explicit object schema
        entry["input_schema"] = schema
        out.append(entry)
    return out


def _tool_choice(choice: Any) -> dict[str, Any]:
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if isinstance(name, str):
            return {"type": "tool", "name": name}
    raise InvalidRequestError(
        "'tool_choice' must be 'auto', 'required', 'none' or a named function",
        param="tool_choice",
    )


# ---------------------------------------------------------------------------------------------
# Stream: Anthropic events -> OpenAI chunks


class AnthropicStream(StreamTranslator):
    """One Messages stream rebuilt as `chat.completion.chunk` frames (reference §3.5 "Stream translation").

    Thinking blocks are dropped: the gateway never asks for extended thinking, OpenAI Chat has no
    standard field for it, and a thinking block cannot be sent back without its signature anyway.
    """

    __slots__ = ("_finish_sent", "_raw_usage", "_tool_index", "created", "id", "include_usage", "model")

    def __init__(self, model: str, include_usage: bool) -> None:
        self.usage: Usage | None = None
        self.finished = False
        self.include_usage = include_usage
        self.id = "msg_unknown"  # replaced by message_start's id
        self.created = int(time.time())
        self.model = model
        # Anthropic block index -> OpenAI tool_calls index (counts tool_use blocks only).
        self._tool_index: dict[int, int] = {}
        self._raw_usage: dict[str, int] = {}
        self._finish_sent = False

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

    def _merge_usage(self, raw: Any) -> None:
        # message_delta counts are cumulative: the latest value of each field wins.
        if isinstance(raw, dict):
            for key, value in raw.items():
                if isinstance(value, int) and not isinstance(value, bool):
                    self._raw_usage[key] = value
            self.usage = _usage(self._raw_usage)

    def feed(self, event: SSEEvent) -> list[bytes]:
        if self.finished:
            return []
        try:
            payload = loads_lenient(event.data)
        except orjson.JSONDecodeError as exc:
            raise UpstreamProtocolError("the provider sent a stream event that is not JSON") from exc
        if not isinstance(payload, dict):
            raise UpstreamProtocolError("the provider sent a stream event that is not a JSON object")
        kind = payload.get("type") or event.event
        if kind == "content_block_delta":
            return self._block_delta(payload)
        if kind == "content_block_start":
            return self._block_start(payload)
        if kind == "message_start":
            message = payload.get("message")
            if isinstance(message, dict):
                if isinstance(message.get("id"), str):
                    self.id = message["id"]
                if isinstance(message.get("model"), str):
                    self.model = message["model"]
                self._merge_usage(message.get("usage"))
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "message_delta":
            self._merge_usage(payload.get("usage"))
            delta = payload.get("delta")
            stop_reason = delta.get("stop_reason") if isinstance(delta, dict) else None
            if stop_reason is None or self._finish_sent:
                return []
            self._finish_sent = True
            return [self._chunk({}, _finish_reason(stop_reason))]
        if kind == "message_stop":
            self.finished = True
            frames = [] if self._finish_sent else [self._chunk({}, "stop")]
            if self.include_usage:
                usage = (self.usage or Usage()).to_openai()
                chunk = {
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": usage,
                }
                frames.append(sse_frame(orjson.dumps(chunk)))
            frames.append(DONE_FRAME)
            return frames
        if kind == "error":
            error = payload.get("error")
            error_type = error.get("type") if isinstance(error, dict) else None
            raise _error_from_body(payload, _ERROR_STATUS.get(error_type, 500) if error_type else 500, {})
        return []  # ping, content_block_stop, and event types added after this was written

    def _block_start(self, payload: dict[str, Any]) -> list[bytes]:
        block = payload.get("content_block")
        if not isinstance(block, dict):
            return []
        if block.get("type") == "tool_use":
            k = len(self._tool_index)
            self._tool_index[_int(payload.get("index"))] = k
            call = {
                "index": k,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        return []

    def _block_delta(self, payload: dict[str, Any]) -> list[bytes]:
        delta = payload.get("delta")
        if not isinstance(delta, dict):
            return []
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            return [self._chunk({"content": text})] if text else []
        if kind == "input_json_delta":
            k = self._tool_index.get(_int(payload.get("index")))
            partial = delta.get("partial_json")
            # The first fragment is often "": nothing to tell the client yet.
            if k is None or not partial:
                return []
            return [self._chunk({"tool_calls": [{"index": k, "function": {"arguments": partial}}]})]
        return []  # thinking_delta, signature_delta, citations_delta: see the class docstring


# ---------------------------------------------------------------------------------------------
# The adapter


class AnthropicAdapter(Adapter):
    provider = "anthropic"

    def __init__(self, entry: ModelEntry) -> None:
        super().__init__(entry)
        base = (entry.api_base or _DEFAULT_API_BASE).rstrip("/")
        if base.endswith("/v1/messages"):
            self.url = base
        elif base.endswith("/v1"):
            self.url = f"{base}/messages"
        else:
            self.url = f"{base}/v1/messages"
        headers = {
            "anthropic-version": _API_VERSION,
            "content-type": "application/json",
            "accept-encoding": "identity",  # no decompression on the hot path
        }
        if entry.api_key:
            headers["x-api-key"] = entry.api_key
        headers.update(entry.headers)
        self.headers = headers
        self.model_id = entry.upstream_model

    def _refuse(self, request: ChatRequest, name: str) -> None:
        if not self.entry.drop_params:
            raise InvalidRequestError(
                f"parameter '{name}' is not supported by model '{request.model}' "
                f"(provider {self.entry.provider}); remove it or set drop_params: true",
                param=name,
                code="unsupported_parameter",
            )

    def build_request(self, request: ChatRequest) -> UpstreamRequest:
        return UpstreamRequest("POST", self.url, self.headers, orjson.dumps(self.translate_body(request)))

    def translate_body(self, request: ChatRequest) -> dict[str, Any]:
        """The Anthropic request body for an OpenAI Chat Completions body; `request.body` is not modified."""
        body = request.body
        n = body.get("n")
        if isinstance(n, int) and n > 1:
            self._refuse(request, "n")
        for name in _UNSUPPORTED:
            value = body.get(name)
            if value is not None and (name == "seed" or value):
                self._refuse(request, name)

        system, messages = _translate_messages(body.get("messages"))
        max_tokens = body.get("max_completion_tokens")
        if max_tokens is None:
            max_tokens = body.get("max_tokens")
        if max_tokens is None:
            max_tokens = self.entry.default_max_tokens or _DEFAULT_MAX_TOKENS
        out: dict[str, Any] = {"model": self.model_id, "max_tokens": max_tokens, "messages": messages}
        if system is not None:
            out["system"] = system

        stop = body.get("stop")
        if isinstance(stop, str):
            out["stop_sequences"] = [stop]
        elif isinstance(stop, list) and stop:
            out["stop_sequences"] = list(stop)
        temperature = body.get("temperature")
        if isinstance(temperature, int | float) and not isinstance(temperature, bool):
            # OpenAI's range is 0-2, Anthropic's 0-1: clamp rather than scale, so 0.7 means the same.
            out["temperature"] = min(max(temperature, 0), 1)
        elif temperature is not None:
            out["temperature"] = temperature  # not a number: let the provider say so
        if body.get("top_p") is not None:
            out["top_p"] = body["top_p"]
        user = body.get("user")
        if isinstance(user, str) and user:
            out["metadata"] = {"user_id": user}
        if request.stream:
            out["stream"] = True

        if body.get("tools") is not None:
            out["tools"] = _tools(body["tools"])
        choice = _tool_choice(body["tool_choice"]) if body.get("tool_choice") is not None else None
        if body.get("parallel_tool_calls") is False:
            if choice is None and "tools" in out:
                choice = {"type": "auto"}
            if choice is not None and choice["type"] != "none":
                choice["disable_parallel_tool_use"] = True
        if choice is not None:
            out["tool_choice"] = choice

        response_format = body.get("response_format")
        if isinstance(response_format, dict):
            kind = response_format.get("type")
            if kind == "json_schema":
                spec = response_format.get("json_schema")
                schema = spec.get("schema") if isinstance(spec, dict) else None
                if not isinstance(schema, dict):
                    raise InvalidRequestError(
                        "response_format.json_schema.schema must be an object",
                        param="response_format.json_schema.schema",
                    )
                out["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
            elif kind == "json_object":
                self._refuse(request, "response_format")  # Anthropic has JSON schemas, not a bare JSON mode
        return out

    def parse_response(self, request: ChatRequest, reply: UpstreamReply) -> ChatResponse:
        try:
            body = loads_lenient(reply.body)
        except orjson.JSONDecodeError as exc:
            raise UpstreamProtocolError("the provider's reply is not JSON") from exc
        if isinstance(body, dict) and body.get("type") == "error":
            error = body.get("error")
            error_type = error.get("type") if isinstance(error, dict) else None
            raise _error_from_body(
                body, _ERROR_STATUS.get(error_type, 500) if error_type else 500, reply.headers
            )
        if not isinstance(body, dict) or not isinstance(body.get("content"), list):
            raise UpstreamProtocolError("the provider's reply is not a Messages response")

        texts: list[str] = []
        tool_calls: list[dict[str, Any]] = []
        for block in body["content"]:
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text" and isinstance(block.get("text"), str):
                texts.append(block["text"])
            elif kind == "tool_use":
                arguments = orjson.dumps(block.get("input") or {}).decode()
                tool_calls.append(
                    {
                        "id": block.get("id"),
                        "type": "function",
                        "function": {"name": block.get("name"), "arguments": arguments},
                    }
                )
            # thinking / redacted_thinking / server-tool blocks: no OpenAI field (see AnthropicStream).
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if tool_calls and not texts else "".join(texts),
            "refusal": None,
        }
        if tool_calls:
            message["tool_calls"] = tool_calls
        finish = _finish_reason(body.get("stop_reason"))
        usage = _usage(body.get("usage"))
        model = body.get("model")
        response: dict[str, Any] = {
            "id": body.get("id") or "msg_unknown",  # kept as is: it is what Anthropic's logs and support know
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model if isinstance(model, str) else self.model_id,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        }
        if usage is not None:
            response["usage"] = usage.to_openai()
        return ChatResponse(content=orjson.dumps(response), usage=usage, finish_reason=finish)

    def stream_translator(self, request: ChatRequest) -> StreamTranslator:
        return AnthropicStream(self.model_id, request.include_usage)

    def map_error(self, reply: UpstreamReply) -> GatewayError:
        try:
            body: Any = loads_lenient(reply.body) if reply.body.strip() else None
        except orjson.JSONDecodeError:
            body = None
        fallback = None
        if not isinstance(body, dict):
            # A proxy or load balancer answered instead of the API (HTML, plain text, nothing).
            text = " ".join(reply.body[:1000].decode("utf-8", "replace").split())[:300]
            fallback = f"the provider returned HTTP {reply.status}" + (f": {text}" if text else "")
        return _error_from_body(body, reply.status, reply.headers, fallback)
