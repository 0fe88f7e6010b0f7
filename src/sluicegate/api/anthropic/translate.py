"""The Anthropic Messages API as a surface over any model: pure translation to and from the OpenAI dialect.

Requests arrive in Anthropic's shape (reference §3.1) and leave as the gateway's internal dialect,
an OpenAI Chat Completions body (§3.5 read right to left): the top-level `system` becomes a system
message, `tool_use` blocks become assistant `tool_calls`, `tool_result` blocks become `tool`
messages, images become `image_url` parts. Every adapter then handles the call as it would an
OpenAI one, so a GPT, Gemini, Bedrock, mock or Claude model answers the Anthropic SDK alike.

Answers go the other way: a `chat.completion` becomes a Messages `message` (§3.2), and a stream of
`chat.completion.chunk` frames becomes the exact event sequence of §3.3 through `MessagesStream`.
Usage is converted back to Anthropic's meaning, where `input_tokens` excludes cache reads and writes.

Nothing here does I/O; the handlers in `messages.py` join it to the pipeline.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from ...errors import GatewayError, InvalidRequestError
from ...types import ChatRequest, Usage

# OpenAI `finish_reason` -> Anthropic `stop_reason` (reference §8, read right to left).
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

# Input blocks Anthropic defines that have no OpenAI-dialect equivalent; named in the 400.
_UNMAPPABLE_BLOCKS = frozenset(
    {
        "search_result", "server_tool_use", "web_search_tool_result", "web_fetch_tool_result",
        "code_execution_tool_result", "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result", "tool_search_tool_result", "container_upload",
        "mcp_tool_use", "mcp_tool_result",
    }
)  # fmt: skip
_THINKING_BLOCKS = ("thinking", "redacted_thinking")
_TOOL_CHOICES = ("auto", "any", "tool", "none")
# Paragraph break between system text blocks joined into one system message.
_SYSTEM_JOINER = "\n\n"
# `count_tokens` takes the request minus what only generation uses (max_tokens, sampling, stream...).
COUNT_TOKENS_KEYS = (
    "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers", "context_management",
    "output_config", "output_format",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Backend:
    """What the model group behind a call can take beyond plain OpenAI Chat Completions.

    `keep_cache_control`: every deployment is Anthropic, whose adapter forwards `cache_control` on
    text parts; for anyone else the key would be an unknown field in an OpenAI content part.
    `token_field`: OpenAI and Azure reasoning models refuse `max_tokens`; every adapter and
    OpenAI-compatible server understands `max_tokens`, not all of them `max_completion_tokens`.
    """

    keep_cache_control: bool = False
    token_field: str = "max_tokens"


# ---------------------------------------------------------------------------------------------
# Validation helpers: Anthropic's own wording ("<path>: Field required", "Input should be ...").


def _bad(message: str, param: str | None = None) -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def _required(path: str) -> InvalidRequestError:
    return _bad(f"{path}: Field required", path)


def _expected(path: str, kind: str) -> InvalidRequestError:
    return _bad(f"{path}: Input should be a valid {kind}", path)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _get_str(block: dict[str, Any], key: str, where: str) -> str:
    value = block.get(key)
    if value is None:
        raise _required(f"{where}.{key}")
    if not isinstance(value, str):
        raise _expected(f"{where}.{key}", "string")
    return value


def _block_list(content: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        raise _expected(where, "list")
    for j, block in enumerate(content):
        if not isinstance(block, dict):
            raise _expected(f"{where}.{j}", "dictionary")
    return content


def _unsupported_block(kind: Any, where: str) -> InvalidRequestError:
    if kind in _UNMAPPABLE_BLOCKS:
        return _bad(
            f"{where}: '{kind}' blocks cannot be translated for this model; the gateway serves "
            "/v1/messages over any provider and supports text, image, document (text), tool_use, "
            "tool_result and thinking blocks",
            f"{where}.type",
        )
    return _bad(f"{where}: Input tag '{kind}' found using 'type' is not a known content block type", where)


# ---------------------------------------------------------------------------------------------
# Request: Anthropic Messages body -> OpenAI Chat Completions body


def _text_part(block: dict[str, Any], where: str, backend: Backend) -> dict[str, Any] | None:
    text = _get_str(block, "text", where)
    if not text:
        return None  # Anthropic refuses empty text blocks; an empty part tells no model anything
    part: dict[str, Any] = {"type": "text", "text": text}
    if backend.keep_cache_control and "cache_control" in block:
        part["cache_control"] = block["cache_control"]
    return part


def _image_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise _required(f"{where}.source")
    kind = source.get("type")
    if kind == "base64":
        media_type = _get_str(source, "media_type", f"{where}.source")
        data = _get_str(source, "data", f"{where}.source")
        url = f"data:{media_type};base64,{data}"
    elif kind == "url":
        url = _get_str(source, "url", f"{where}.source")
    elif kind == "file":
        raise _bad(
            f"{where}.source: images given by Anthropic file id cannot be sent to this model; "
            "send the image as base64 or a URL",
            f"{where}.source",
        )
    else:
        raise _bad(f"{where}.source.type: Input should be 'base64', 'url' or 'file'", f"{where}.source.type")
    return {"type": "image_url", "image_url": {"url": url}}


def _document_parts(block: dict[str, Any], where: str, backend: Backend) -> list[dict[str, Any]]:
    """A plain-text document is only text; PDFs (base64, URL or file) have no portable equivalent."""
    source = block.get("source")
    if not isinstance(source, dict):
        raise _required(f"{where}.source")
    kind = source.get("type")
    if kind == "text":
        text = _get_str(source, "data", f"{where}.source")
        return [{"type": "text", "text": text}] if text else []
    if kind == "content":
        content = source.get("content")
        if isinstance(content, str):
            return [{"type": "text", "text": content}] if content else []
        parts = []
        for j, inner in enumerate(_block_list(content, f"{where}.source.content")):
            if inner.get("type") != "text":
                raise _bad(
                    f"{where}.source.content.{j}: only text blocks are supported in a document",
                    f"{where}.source.content.{j}.type",
                )
            part = _text_part(inner, f"{where}.source.content.{j}", backend)
            if part is not None:
                parts.append(part)
        return parts
    raise _bad(
        f"{where}: document blocks with a '{kind}' source (PDF) cannot be translated for this model; "
        "only plain-text documents (source type 'text' or 'content') are supported",
        f"{where}.source.type",
    )


def _tool_message(block: dict[str, Any], where: str, backend: Backend) -> tuple[dict[str, Any], list[Any]]:
    """A `tool_result` block -> an OpenAI tool message, plus image parts it carried (see the docs)."""
    call_id = _get_str(block, "tool_use_id", where)
    content = block.get("content")
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    if isinstance(content, str):
        texts.append(content)
    elif content is not None:
        for j, inner in enumerate(_block_list(content, f"{where}.content")):
            at = f"{where}.content.{j}"
            kind = inner.get("type")
            if kind == "text":
                texts.append(_get_str(inner, "text", at))
            elif kind == "image":
                images.append(_image_part(inner, at))
            elif kind == "document":
                texts.extend(part["text"] for part in _document_parts(inner, at, backend))
            else:
                raise _unsupported_block(kind, at)
    text = "\n".join(t for t in texts if t)
    if block.get("is_error") is True:
        # OpenAI tool messages have no error flag: the model learns it from the text.
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": call_id, "content": text}, images


def _user_messages(content: list[dict[str, Any]], where: str, backend: Backend) -> list[dict[str, Any]]:
    """One Anthropic user turn -> tool messages first (OpenAI wants them right after the calls), then
    one user message with the remaining parts."""
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        at = f"{where}.{j}"
        kind = block.get("type")
        if kind == "text":
            part = _text_part(block, at, backend)
            if part is not None:
                parts.append(part)
        elif kind == "image":
            parts.append(_image_part(block, at))
        elif kind == "tool_result":
            message, images = _tool_message(block, at, backend)
            tool_messages.append(message)
            parts.extend(images)
        elif kind == "document":
            parts.extend(_document_parts(block, at, backend))
        elif kind in _THINKING_BLOCKS:
            continue
        else:
            raise _unsupported_block(kind, at)
    if not parts:
        return tool_messages
    if len(parts) == 1 and parts[0].keys() == {"type", "text"}:
        return [*tool_messages, {"role": "user", "content": parts[0]["text"]}]
    return [*tool_messages, {"role": "user", "content": parts}]


def _assistant_message(content: list[dict[str, Any]], where: str) -> dict[str, Any] | None:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        at = f"{where}.{j}"
        kind = block.get("type")
        if kind == "text":
            text = _get_str(block, "text", at)
            if text:
                texts.append(text)
        elif kind == "tool_use":
            call_id = _get_str(block, "id", at)
            name = _get_str(block, "name", at)
            tool_input = block.get("input")
            if not isinstance(tool_input, dict):
                raise _expected(f"{at}.input", "dictionary")
            arguments = orjson.dumps(tool_input).decode()
            calls.append(
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            )
        elif kind in _THINKING_BLOCKS:
            continue  # OpenAI Chat has no field for it, and only Claude could verify its signature
        else:
            raise _unsupported_block(kind, at)
    if not texts and not calls:
        return None
    message: dict[str, Any] = {"role": "assistant"}
    if texts:
        # Joined as the Anthropic adapter joins a reply's text blocks, so a round trip is lossless.
        message["content"] = "".join(texts)
    if calls:
        message["tool_calls"] = calls
    return message


def _system_message(system: Any, backend: Backend) -> dict[str, Any] | None:
    if isinstance(system, str):
        return {"role": "system", "content": system} if system else None
    parts = []
    for j, block in enumerate(_block_list(system, "system")):
        if block.get("type") != "text":
            raise _bad(f"system.{j}: Input should be a valid text block", f"system.{j}.type")
        part = _text_part(block, f"system.{j}", backend)
        if part is not None:
            parts.append(part)
    if not parts:
        return None
    if backend.keep_cache_control:
        return {"role": "system", "content": parts}  # the Anthropic adapter keeps these blocks as they are
    return {"role": "system", "content": _SYSTEM_JOINER.join(part["text"] for part in parts)}


def _messages(messages: Any, backend: Backend) -> list[dict[str, Any]]:
    if messages is None:
        raise _required("messages")
    if not isinstance(messages, list):
        raise _expected("messages", "list")
    if not messages:
        raise _bad("messages: at least one message is required", "messages")
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise _expected(where, "dictionary")
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise _bad(f"{where}.role: Input should be 'user' or 'assistant'", f"{where}.role")
        if "content" not in message:
            raise _required(f"{where}.content")
        content = message["content"]
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        blocks = _block_list(content, f"{where}.content")
        if role == "user":
            out.extend(_user_messages(blocks, f"{where}.content", backend))
        else:
            assistant = _assistant_message(blocks, f"{where}.content")
            if assistant is not None:
                out.append(assistant)
    return out


def _tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(_block_list(tools, "tools")):
        where = f"tools.{i}"
        kind = tool.get("type")
        if kind not in (None, "custom"):
            name = tool.get("name")
            raise _bad(
                f"{where}: server tool '{kind}'"
                + (f" ('{name}')" if isinstance(name, str) else "")
                + " is run by Anthropic's API and cannot be translated for this model; "
                "only custom tools (name, description, input_schema) are supported",
                f"{where}.type",
            )
        name = _get_str(tool, "name", where)
        schema = tool.get("input_schema")
        if schema is None:
            raise _required(f"{where}.input_schema")
        if not isinstance(schema, dict):
            raise _expected(f"{where}.input_schema", "dictionary")
        function: dict[str, Any] = {"name": name}
        description = tool.get("description")
        if isinstance(description, str) and description:
            function["description"] = description
        function["parameters"] = schema
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any) -> tuple[Any, bool]:
    """Anthropic `tool_choice` -> (OpenAI `tool_choice`, whether parallel calls are disabled)."""
    if not isinstance(choice, dict):
        raise _expected("tool_choice", "dictionary")
    kind = choice.get("type")
    if kind not in _TOOL_CHOICES:
        raise _bad(
            f"tool_choice: Input tag '{kind}' found using 'type' does not match any of the expected tags: "
            + ", ".join(f"'{t}'" for t in _TOOL_CHOICES),
            "tool_choice.type",
        )
    serial = choice.get("disable_parallel_tool_use") is True
    if kind == "auto":
        return "auto", serial
    if kind == "any":
        return "required", serial
    if kind == "none":
        return "none", False
    name = _get_str(choice, "name", "tool_choice")
    return {"type": "function", "function": {"name": name}}, serial


def _response_format(config: Any, where: str) -> dict[str, Any] | None:
    """`output_config.format` (or the older top-level `output_format`) -> OpenAI `response_format`."""
    if not isinstance(config, dict):
        raise _expected(where, "dictionary")
    if config.get("type") != "json_schema":
        raise _bad(f"{where}.type: Input should be 'json_schema'", f"{where}.type")
    schema = config.get("schema")
    if not isinstance(schema, dict):
        raise _expected(f"{where}.schema", "dictionary")
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


def check_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if model is None:
        raise _required("model")
    if not isinstance(model, str) or not model:
        raise _expected("model", "string")
    return model


def to_chat_request(body: dict[str, Any], backend: Backend) -> ChatRequest:
    """Validate an Anthropic Messages body and translate it; errors are 400s in Anthropic's words."""
    model = check_model(body)
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise _required("max_tokens")
    if not _is_int(max_tokens):
        raise _expected("max_tokens", "integer")
    if max_tokens < 1:
        raise _bad("max_tokens: Input should be greater than or equal to 1", "max_tokens")

    out: dict[str, Any] = {"model": model}
    messages = _messages(body.get("messages"), backend)
    system = body.get("system")
    if system is not None:
        if not isinstance(system, str | list):
            raise _expected("system", "string")
        system_message = _system_message(system, backend)
        if system_message is not None:
            messages.insert(0, system_message)
    out["messages"] = messages
    out[backend.token_field] = max_tokens

    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _expected("stream", "boolean")
    if stream:
        out["stream"] = True
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None:
            if not _is_number(value):
                raise _expected(name, "number")
            out[name] = value
    # top_k: no OpenAI-dialect field, so no adapter could carry it; validated and dropped (see the docs).
    top_k = body.get("top_k")
    if top_k is not None and not _is_int(top_k):
        raise _expected("top_k", "integer")
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise _bad("stop_sequences: Input should be a valid list of strings", "stop_sequences")
        if stops:
            out["stop"] = list(stops)
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise _expected("metadata", "dictionary")
        user_id = metadata.get("user_id")
        if user_id is not None and not isinstance(user_id, str):
            raise _expected("metadata.user_id", "string")
        if user_id:
            out["user"] = user_id

    tools = body.get("tools")
    choice = body.get("tool_choice")
    translated_choice, serial = _tool_choice(choice) if choice is not None else (None, False)
    if tools is not None:
        translated = _tools(tools)
        # OpenAI refuses tool_choice and parallel_tool_calls without tools: both only travel with them.
        if translated:
            out["tools"] = translated
            if translated_choice is not None:
                out["tool_choice"] = translated_choice
            if serial:
                out["parallel_tool_calls"] = False

    output_config = body.get("output_config")
    if output_config is not None:
        if not isinstance(output_config, dict):
            raise _expected("output_config", "dictionary")
        if output_config.get("format") is not None:
            out["response_format"] = _response_format(output_config["format"], "output_config.format")
    elif body.get("output_format") is not None:
        out["response_format"] = _response_format(body["output_format"], "output_format")
    # `thinking`, `service_tier`, `container`, `mcp_servers`, `context_management` and beta fields
    # have no portable equivalent and are ignored, so clients that always send them keep working.
    # The caller asked for a stream: the adapter's usage chunk must reach the encoder for message_delta.
    # `sluicegate` (per-request gateway controls, SPEC §6) goes to the router, never to a provider.
    return ChatRequest(
        body=out,
        model=model,
        stream=bool(stream),
        include_usage=bool(stream),
        controls=body.get("sluicegate"),
    )


# ---------------------------------------------------------------------------------------------
# Response: OpenAI chat.completion -> Anthropic message


def usage_fields(usage: Usage | None) -> dict[str, int]:
    """Our usage (prompt includes cache reads and writes) in Anthropic's terms (input excludes both)."""
    if usage is None:
        usage = Usage()
    cached = usage.cached_tokens
    written = usage.cache_write_tokens
    return {
        "input_tokens": max(0, usage.prompt_tokens - cached - written),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
        "output_tokens": usage.completion_tokens,
    }


def message_id(upstream_id: Any) -> str:
    """An Anthropic-looking id that still names the provider's own id (for support and logs)."""
    if isinstance(upstream_id, str) and upstream_id:
        return upstream_id if upstream_id.startswith("msg_") else f"msg_{upstream_id}"
    return f"msg_{uuid.uuid4().hex}"


def tool_input(arguments: Any) -> dict[str, Any]:
    """OpenAI's JSON-string arguments -> Anthropic's `input` object.

    Arguments that are not a JSON object are kept under `_raw_arguments` rather than dropped: the
    client's schema check then reports the bad call back to the model, which can retry it.
    """
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        parsed = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"_raw_arguments": arguments}
    return parsed if isinstance(parsed, dict) else {"_raw_arguments": arguments}


def to_message(completion: Any, model: str, usage: Usage | None) -> dict[str, Any]:
    """A `chat.completion` object as an Anthropic `message` (reference §3.2); `model` is the caller's."""
    choice: dict[str, Any] = {}
    if isinstance(completion, dict):
        choices = completion.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            choice = choices[0]
        if usage is None:
            usage = Usage.from_openai(completion.get("usage"))
    message = choice.get("message")
    message = message if isinstance(message, dict) else {}
    content: list[dict[str, Any]] = []
    text = message.get("content")
    if isinstance(text, list):  # a few OpenAI-compatible servers answer with text parts
        text = "".join(p.get("text", "") for p in text if isinstance(p, dict) and p.get("type") == "text")
    if not text and isinstance(message.get("refusal"), str):
        text = message["refusal"]
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else []:
        if not isinstance(call, dict):
            continue
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        call_id = call.get("id")
        content.append(
            {
                "type": "tool_use",
                "id": call_id if isinstance(call_id, str) and call_id else f"toolu_{uuid.uuid4().hex[:24]}",
                "name": function.get("name") if isinstance(function.get("name"), str) else "",
                "input": tool_input(function.get("arguments")),
            }
        )
    finish = choice.get("finish_reason")
    stop_reason = STOP_REASONS.get(finish, "end_turn") if isinstance(finish, str) else "end_turn"
    if stop_reason == "end_turn" and any(block["type"] == "tool_use" for block in content):
        stop_reason = "tool_use"  # some servers say "stop" after a tool call
    return {
        "id": message_id(completion.get("id") if isinstance(completion, dict) else None),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        # OpenAI does not say which stop sequence ended the text (see the docs' decisions).
        "stop_sequence": None,
        "usage": usage_fields(usage),
    }


# ---------------------------------------------------------------------------------------------
# Stream: OpenAI chunk frames -> Anthropic events


def event(payload: dict[str, Any]) -> bytes:
    """One Anthropic SSE event: `event:` names it, `data:` repeats the name as `type` (reference §3.3)."""
    return b"event: " + payload["type"].encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


_PING = event({"type": "ping"})


class MessagesStream:
    """Per-stream state: OpenAI `chat.completion.chunk` frames in, Anthropic events out.

    Blocks open lazily, so a reply with only tool calls starts with its `tool_use` block at index 0
    and never carries an empty text block (as the real API does). A block closes when the next one
    opens or the choice finishes; each OpenAI tool-call index gets its own block index. OpenAI puts
    usage after the finish reason, so `message_delta` (stop reason and every usage count, input
    included) waits for `[DONE]`; `message_start` reports zero input tokens for the same reason.
    """

    __slots__ = (
        "_blocks",
        "_done",
        "_next_index",
        "_open",
        "_open_is_text",
        "_started",
        "_stop_reason",
        "model",
        "usage",
    )

    def __init__(self, model: str) -> None:
        self.model = model
        self.usage: Usage | None = None
        self._started = False
        self._done = False
        self._next_index = 0
        self._open: int | None = None  # index of the open block
        self._open_is_text = False
        self._blocks: dict[int, int] = {}  # OpenAI tool-call index -> block index
        self._stop_reason: str | None = None

    def encode(self, frames: list[bytes]) -> bytes:
        out: list[bytes] = []
        for frame in frames:
            self._frame(frame, out)
        return b"".join(out)

    def error(self, error: GatewayError) -> bytes:
        # SPEC §6: a failure after the first byte ends the stream with an `error` event.
        return event(error.to_anthropic())

    # -- per frame

    def _frame(self, frame: bytes, out: list[bytes]) -> None:
        if self._done:
            return
        payload = frame[5:].strip() if frame.startswith(b"data:") else frame.strip()
        if payload.startswith(b"[DONE]"):
            self._start(None, out)
            self._finish(out)
            return
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return  # adapters emit JSON; anything else has nothing for the caller
        if not isinstance(chunk, dict):
            return
        self._start(chunk.get("id"), out)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = Usage.from_openai(usage)
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return
        for choice in choices:
            # Only choice 0 exists: the translated request never asks for `n`.
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                self._choice(choice, out)

    def _start(self, upstream_id: Any, out: list[bytes]) -> None:
        if self._started:
            return
        self._started = True
        message: dict[str, Any] = {
            "id": message_id(upstream_id),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_fields(None),
        }
        out.append(event({"type": "message_start", "message": message}))
        out.append(_PING)

    def _choice(self, choice: dict[str, Any], out: list[bytes]) -> None:
        delta = choice.get("delta")
        if isinstance(delta, dict):
            text = delta.get("content")
            if isinstance(text, str) and text:
                self._text(text, out)
            refusal = delta.get("refusal")
            if isinstance(refusal, str) and refusal:
                self._text(refusal, out)
            calls = delta.get("tool_calls")
            if isinstance(calls, list):
                for call in calls:
                    if isinstance(call, dict):
                        self._tool_call(call, out)
        finish = choice.get("finish_reason")
        if isinstance(finish, str) and finish:
            self._close(out)
            self._stop_reason = STOP_REASONS.get(finish, "end_turn")

    def _open_block(self, block: dict[str, Any], out: list[bytes]) -> int:
        self._close(out)
        index = self._next_index
        self._next_index += 1
        self._open = index
        self._open_is_text = block["type"] == "text"
        out.append(event({"type": "content_block_start", "index": index, "content_block": block}))
        return index

    def _close(self, out: list[bytes]) -> None:
        if self._open is not None:
            out.append(event({"type": "content_block_stop", "index": self._open}))
            self._open = None
            self._open_is_text = False

    def _text(self, text: str, out: list[bytes]) -> None:
        if not self._open_is_text:
            self._open_block({"type": "text", "text": ""}, out)
        delta = {"type": "text_delta", "text": text}
        out.append(event({"type": "content_block_delta", "index": self._open, "delta": delta}))

    def _tool_call(self, call: dict[str, Any], out: list[bytes]) -> None:
        k = call.get("index", 0)
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        index = self._blocks.get(k)
        if index is None:
            call_id = call.get("id")
            name = function.get("name")
            block = {
                "type": "tool_use",
                "id": call_id if isinstance(call_id, str) and call_id else f"toolu_{uuid.uuid4().hex[:24]}",
                "name": name if isinstance(name, str) else "",
                "input": {},
            }
            index = self._blocks[k] = self._open_block(block, out)
        # A fragment of an earlier, already closed call (no provider here interleaves them) still goes
        # to that call's block index, where the SDK's accumulator puts it.
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            delta = {"type": "input_json_delta", "partial_json": arguments}
            out.append(event({"type": "content_block_delta", "index": index, "delta": delta}))

    def _finish(self, out: list[bytes]) -> None:
        self._close(out)
        self._done = True
        stop_reason = self._stop_reason or "end_turn"
        if stop_reason == "end_turn" and self._blocks:
            stop_reason = "tool_use"
        delta = {"stop_reason": stop_reason, "stop_sequence": None}
        out.append(event({"type": "message_delta", "delta": delta, "usage": usage_fields(self.usage)}))
        out.append(event({"type": "message_stop"}))


# ---------------------------------------------------------------------------------------------
# count_tokens estimate (when no provider can count for us)

# ~4 characters a token is the usual rule of thumb for English text and code with BPE tokenizers.
_CHARS_PER_TOKEN = 4
_PER_MESSAGE = 3  # role markers and turn separators
_PER_IMAGE = 1600  # Anthropic's cost of an image at its largest size (about 1.15 megapixels)
_TOOLS_OVERHEAD = 300  # the tool-use instructions a provider adds when tools are present


def _chars(value: Any) -> tuple[int, int]:
    """(characters of text, images) inside a content value or block tree."""
    if isinstance(value, str):
        return len(value), 0
    if isinstance(value, list):
        chars = images = 0
        for item in value:
            c, i = _chars(item)
            chars += c
            images += i
        return chars, images
    if not isinstance(value, dict):
        return 0, 0
    kind = value.get("type")
    if kind == "image":
        return 0, 1
    if kind == "text":
        return _chars(value.get("text"))
    if kind == "tool_use":
        return len(str(value.get("name", ""))) + len(orjson.dumps(value.get("input") or {})), 0
    if kind == "tool_result":
        return _chars(value.get("content"))
    if kind == "document":
        source = value.get("source")
        if isinstance(source, dict):
            return _chars(source.get("data") if source.get("type") == "text" else source.get("content"))
    if kind in _THINKING_BLOCKS:
        return 0, 0  # earlier turns' thinking is not counted as input by Anthropic
    return 0, 0


def estimate_input_tokens(body: dict[str, Any]) -> int:
    """An estimate of a Messages request's input tokens: text/4 + per-message and per-image costs."""
    messages = body.get("messages")
    messages = messages if isinstance(messages, list) else []
    chars, images = _chars(body.get("system"))
    for message in messages:
        if isinstance(message, dict):
            c, i = _chars(message.get("content"))
            chars += c
            images += i
    tools = body.get("tools")
    overhead = 0
    if isinstance(tools, list) and tools:
        chars += len(orjson.dumps(tools))
        overhead = _TOOLS_OVERHEAD
    return math.ceil(chars / _CHARS_PER_TOKEN) + _PER_MESSAGE * len(messages) + _PER_IMAGE * images + overhead


def check_count_tokens(body: dict[str, Any]) -> str:
    """The checks `count_tokens` shares with `messages`: a model and a well-formed conversation."""
    model = check_model(body)
    _messages(body.get("messages"), Backend())
    return model
