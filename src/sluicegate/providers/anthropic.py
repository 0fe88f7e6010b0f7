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

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import GatewayError, InvalidRequestError, UpstreamProtocolError, UpstreamStatusError
from ..types import ChatRequest, ChatResponse, UpstreamReply, UpstreamRequest, Usage
from ._translate import (
    ChunkStream,
    arguments_delta,
    assistant_message,
    chat_response,
    choice,
    clamp,
    content_parts,
    error_json,
    event_json,
    image_url,
    int_or_zero,
    invalid_tool_choice,
    iter_function_tools,
    iter_messages,
    iter_tool_calls,
    json_schema,
    max_tokens,
    named_function,
    not_an_image_url,
    object_schema,
    parse_data_url,
    part_text,
    proxy_message,
    reply_json,
    requested,
    stop_sequences,
    tool_arguments,
    tool_call,
    tool_call_delta,
    tool_call_id,
    unsupported_role,
    usage_with_cache,
)
from .base import Adapter, StreamTranslator, retry_hint_headers

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

# OpenAI parameters with no Anthropic equivalent. A neutral value (n: 1, false, 0, {}) asks for
# nothing, so it is dropped rather than refused; `seed` has no neutral value.
_UNSUPPORTED = (
    "n", "logprobs", "top_logprobs", "logit_bias", "frequency_penalty", "presence_penalty", "seed",
)  # fmt: skip


def _finish_reason(stop_reason: Any) -> str:
    return _FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def _usage(raw: Any) -> Usage | None:
    """Anthropic usage -> ours; its `input_tokens` excludes cache reads and writes, ours includes them."""
    return usage_with_cache(
        raw,
        input_key="input_tokens",
        output_key="output_tokens",
        cache_read_key="cache_read_input_tokens",
        cache_write_key="cache_creation_input_tokens",
    )


def _error_from_body(
    body: Any, status: int, headers: Mapping[str, str], fallback: str | None = None
) -> UpstreamStatusError:
    """`{"type":"error","error":{"type","message"}}` -> UpstreamStatusError; code = Anthropic's error type.

    The OpenAI error type follows from the status (errors.py), as for every non-OpenAI provider.
    """
    message: str | None = None
    code: str | None = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            raw_message, raw_type = err.get("message"), err.get("type")
            message = raw_message if isinstance(raw_message, str) and raw_message else None
            code = raw_type if isinstance(raw_type, str) else None
    return UpstreamStatusError(
        message or fallback or f"the provider returned HTTP {status}",
        upstream_status=status,
        code=code,
        headers=retry_hint_headers(headers),
    )


# ---------------------------------------------------------------------------------------------
# Request: OpenAI messages -> Anthropic system + turns


def _text_part(part: Any, where: str) -> dict[str, Any] | None:
    """An OpenAI text part as a text block (None when empty: Anthropic rejects empty text blocks)."""
    text = part_text(part, where)
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
    blocks = []
    for at, part in content_parts(content, where):
        block = _text_part(part, at)
        if block is not None:
            blocks.append(block)
    return blocks


def _image_block(part: dict[str, Any], where: str) -> dict[str, Any]:
    at = f"{where}.image_url.url"
    url, _ = image_url(part, at)
    if url.startswith("data:"):
        media_type, data = parse_data_url(url, at)
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise not_an_image_url(at)


def _user_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, list):
        blocks = []
        for at, part in content_parts(content, where):
            if isinstance(part, dict) and part.get("type") == "image_url":
                blocks.append(_image_block(part, at))
            else:
                block = _text_part(part, at)
                if block is not None:
                    blocks.append(block)
        return blocks
    return _text_blocks(content, where)


def _assistant_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    blocks = _text_blocks(message.get("content"), where)
    tool_calls = message.get("tool_calls")
    if tool_calls is None:
        return blocks
    for call in iter_tool_calls(tool_calls, where):
        if not isinstance(call.id, str):
            raise InvalidRequestError(f"{call.at}.id is required", param=f"{call.at}.id")
        tool_input = tool_arguments(call.arguments, f"{call.at}.function.arguments")
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": tool_input})
    return blocks


def _tool_result_block(message: dict[str, Any], where: str) -> dict[str, Any]:
    call_id = tool_call_id(message, where)
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
    system: list[dict[str, Any]] = []
    system_is_plain = True
    turns: list[tuple[str, list[dict[str, Any]]]] = []
    for where, message, role in iter_messages(messages):
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
            raise unsupported_role(role, where)
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
    out = []
    for tool in iter_function_tools(tools):
        entry: dict[str, Any] = {"name": tool.name}
        if tool.description is not None:
            entry["description"] = tool.description
        # Anthropic requires an explicit object schema.
        entry["input_schema"] = object_schema(tool.parameters, typed=True)
        out.append(entry)
    return out


def _tool_choice(choice: Any) -> dict[str, Any]:
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    name = named_function(choice)
    if name is not None:
        return {"type": "tool", "name": name}
    raise invalid_tool_choice()


# ---------------------------------------------------------------------------------------------
# Stream: Anthropic events -> OpenAI chunks


class AnthropicStream(ChunkStream):
    """One Messages stream rebuilt as `chat.completion.chunk` frames (reference §3.5 "Stream translation").

    Thinking blocks are dropped: the gateway never asks for extended thinking, OpenAI Chat has no
    standard field for it, and a thinking block cannot be sent back without its signature anyway.
    """

    __slots__ = ("_finish_sent", "_raw_usage", "_tool_index")

    def __init__(self, model: str, include_usage: bool) -> None:
        super().__init__("msg_unknown", model, include_usage)  # the id is replaced by message_start's
        # Anthropic block index -> OpenAI tool_calls index (counts tool_use blocks only).
        self._tool_index: dict[int, int] = {}
        self._raw_usage: dict[str, int] = {}
        self._finish_sent = False

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
        payload = event_json(event.data)
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
            return [self.chunk({"role": "assistant", "content": ""})]
        if kind == "message_delta":
            self._merge_usage(payload.get("usage"))
            delta = payload.get("delta")
            stop_reason = delta.get("stop_reason") if isinstance(delta, dict) else None
            if stop_reason is None or self._finish_sent:
                return []
            self._finish_sent = True
            return [self.chunk({}, _finish_reason(stop_reason))]
        if kind == "message_stop":
            frames = [] if self._finish_sent else [self.chunk({}, "stop")]
            return frames + self.closing()
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
            self._tool_index[int_or_zero(payload.get("index"))] = k
            return [self.chunk({"tool_calls": [tool_call_delta(k, block.get("id"), block.get("name"))]})]
        if block.get("type") == "text" and block.get("text"):
            return [self.chunk({"content": block["text"]})]
        return []

    def _block_delta(self, payload: dict[str, Any]) -> list[bytes]:
        delta = payload.get("delta")
        if not isinstance(delta, dict):
            return []
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            return [self.chunk({"content": text})] if text else []
        if kind == "input_json_delta":
            k = self._tool_index.get(int_or_zero(payload.get("index")))
            partial = delta.get("partial_json")
            # The first fragment is often "": nothing to tell the client yet.
            if k is None or not partial:
                return []
            return [self.chunk({"tool_calls": [arguments_delta(k, partial)]})]
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

    def build_request(self, request: ChatRequest) -> UpstreamRequest:
        return UpstreamRequest("POST", self.url, self.headers, orjson.dumps(self.translate_body(request)))

    def translate_body(self, request: ChatRequest) -> dict[str, Any]:
        """The Anthropic request body for an OpenAI Chat Completions body; `request.body` is not modified."""
        body = request.body
        for name in requested(body, _UNSUPPORTED):
            self.refuse(request, name)

        system, messages = _translate_messages(body.get("messages"))
        limit = max_tokens(body, self.entry.default_max_tokens or _DEFAULT_MAX_TOKENS)
        out: dict[str, Any] = {"model": self.model_id, "max_tokens": limit, "messages": messages}
        if system is not None:
            out["system"] = system

        stop = stop_sequences(body)
        if stop is not None:
            out["stop_sequences"] = stop
        if body.get("temperature") is not None:
            # OpenAI's range is 0-2, Anthropic's 0-1: clamp rather than scale, so 0.7 means the same.
            out["temperature"] = clamp(body["temperature"], 0, 1)
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
                schema = json_schema(response_format)
                out["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
            elif kind == "json_object":
                self.refuse(request, "response_format")  # Anthropic has JSON schemas, not a bare JSON mode
        return out

    def parse_response(self, request: ChatRequest, reply: UpstreamReply) -> ChatResponse:
        body = reply_json(reply)
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
                tool_calls.append(tool_call(block.get("id"), block.get("name"), arguments))
            # thinking / redacted_thinking / server-tool blocks: no OpenAI field (see AnthropicStream).
        message = assistant_message(texts, tool_calls)
        finish = _finish_reason(body.get("stop_reason"))
        model = body.get("model")
        return chat_response(
            body.get("id") or "msg_unknown",  # kept as is: it is what Anthropic's logs and support know
            model if isinstance(model, str) else self.model_id,
            [choice(message, finish)],
            _usage(body.get("usage")),
        )

    def stream_translator(self, request: ChatRequest) -> StreamTranslator:
        return AnthropicStream(self.model_id, request.include_usage)

    def map_error(self, reply: UpstreamReply) -> GatewayError:
        body = error_json(reply.body)
        # Not a dict: a proxy or load balancer answered instead of the API (HTML, plain text, nothing).
        fallback = None if isinstance(body, dict) else proxy_message(reply.status, reply.body)
        return _error_from_body(body, reply.status, reply.headers, fallback)
