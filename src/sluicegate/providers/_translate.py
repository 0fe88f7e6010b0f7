"""Pure helpers shared by the adapters that translate OpenAI Chat Completions to another wire format.

Anthropic, Bedrock, Cohere, Gemini (and Vertex, through it) and Ollama each rebuild the caller's
OpenAI request in their provider's shape and rebuild the reply as OpenAI objects. The pieces they
all do the same way live here, so that each provider module holds only what is its own:

- reading the OpenAI request: parameters that ask for something (`requested`), messages, content
  parts and data URLs, assistant tool calls and their JSON arguments, function tools, named
  `tool_choice`, `response_format` schemas, `max_tokens` and `stop` (same checks and the same
  400 messages for every provider);
- building the OpenAI answer: the `chat.completion` body (`chat_response`) and, through
  `ChunkStream`, the `chat.completion.chunk` frames, tool-call deltas and the closing usage chunk;
- reading the provider's reply: JSON bodies, and a readable message when a proxy answered instead
  (Mistral, which repairs OpenAI-shaped replies and streams, uses these readers too).

Everything here is pure translation (no I/O). The OpenAI-compatible passthrough
(`_openai_compat.py`) forwards bodies and stream events as they are: it uses only `error_json`,
on the error path, so a successful passthrough call does no extra work for this module.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import orjson

from ..errors import InvalidRequestError, UpstreamProtocolError
from ..types import ChatResponse, EmbeddingsRequest, UpstreamReply, Usage
from .base import DONE_FRAME, StreamTranslator, loads_lenient, sse_frame


def int_or_zero(value: Any) -> int:
    """A provider's token count, or 0 when it is missing or not an integer (booleans are not counts)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_with_cache(
    raw: Any, *, input_key: str, output_key: str, cache_read_key: str, cache_write_key: str
) -> Usage | None:
    """Usage of a provider whose input count excludes cache reads and writes (ours includes them)."""
    if not isinstance(raw, dict):
        return None
    cache_read = int_or_zero(raw.get(cache_read_key))
    cache_write = int_or_zero(raw.get(cache_write_key))
    return Usage(
        prompt_tokens=int_or_zero(raw.get(input_key)) + cache_read + cache_write,
        completion_tokens=int_or_zero(raw.get(output_key)),
        cached_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


# ---------------------------------------------------------------------------------------------
# Request: parameters


def requested(body: Mapping[str, Any], names: Iterable[str]) -> Iterator[str]:
    """The parameters among `names` whose value in `body` asks for something, in the order of `names`.

    A neutral value (absent, null, false, 0, "", {}) asks for nothing, so an adapter drops it
    rather than refusing it; `n` asks for something only above 1, and `seed` whatever its value.
    """
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if name == "n":
            if isinstance(value, int) and value > 1:
                yield name
        elif name == "seed" or value:
            yield name


def max_tokens(body: Mapping[str, Any], default: Any = None) -> Any:
    """The output limit: `max_completion_tokens`, else the deprecated `max_tokens`, else `default`."""
    found = body.get("max_completion_tokens")
    if found is None:
        found = body.get("max_tokens")
    return default if found is None else found


def stop_sequences(body: Mapping[str, Any]) -> list[Any] | None:
    """OpenAI `stop` (a string or an array) as a list, or None when there is nothing to stop on."""
    stop = body.get("stop")
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and stop:
        return list(stop)
    return None


def clamp(value: Any, low: float, high: float) -> Any:
    """A number held within [low, high]; anything else as given, for the provider to refuse."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return min(max(value, low), high)
    return value


# ---------------------------------------------------------------------------------------------
# Request: messages and content parts


def iter_messages(messages: Any) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """(`messages[i]`, message, role) for each message, after checking the array's shape."""
    if not isinstance(messages, list):
        raise InvalidRequestError("'messages' must be an array of message objects", param="messages")
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequestError(f"{where} must be an object", param=where)
        yield where, message, message.get("role")


def unsupported_role(role: Any, where: str) -> InvalidRequestError:
    return InvalidRequestError(f"{where}.role: unsupported role {role!r}", param=f"{where}.role")


def content_parts(content: Any, where: str) -> Iterator[tuple[str, Any]]:
    """(`...content[j]`, part) for each part of a content array; other non-string content is a 400."""
    if not isinstance(content, list):
        raise InvalidRequestError(
            f"{where}.content must be a string or an array of parts", param=f"{where}.content"
        )
    for j, part in enumerate(content):
        yield f"{where}.content[{j}]", part


def part_text(part: Any, at: str) -> str:
    """The text of an OpenAI text (or refusal) part; any other part is a 400 naming its type."""
    if not isinstance(part, dict) or part.get("type") not in ("text", "refusal"):
        kind = part.get("type") if isinstance(part, dict) else type(part).__name__
        raise InvalidRequestError(
            f"{at}.type: content part {kind!r} is not supported here", param=f"{at}.type"
        )
    text = part.get("text") if part["type"] == "text" else part.get("refusal")
    if not isinstance(text, str):
        raise InvalidRequestError(f"{at}: a text part needs a string 'text'", param=at)
    return text


def image_url(part: dict[str, Any], at: str) -> tuple[str, Any]:
    """An `image_url` part's URL (checked to be a string, `at` names it) and its `image_url` value."""
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise InvalidRequestError(f"{at} must be a string", param=at)
    return url, image


def parse_data_url(url: str, at: str) -> tuple[str, str]:
    """`data:<media type>;base64,<data>` -> (media type, base64 data); anything else is a 400 naming `at`."""
    header, comma, data = url[5:].partition(",") if url.startswith("data:") else ("", "", "")
    if not comma or not header.endswith(";base64"):
        raise InvalidRequestError(
            f"{at}: a data URL must look like data:<media type>;base64,<data>", param=at
        )
    return header.partition(";")[0], data


def not_an_image_url(at: str) -> InvalidRequestError:
    return InvalidRequestError(f"{at} must be an http(s) URL or a base64 data URL", param=at)


# ---------------------------------------------------------------------------------------------
# Request: tool calls, tool results, tools


class AssistantToolCall(NamedTuple):
    """One entry of an assistant message's `tool_calls`, its shape checked (`id` is not)."""

    at: str  # messages[i].tool_calls[k]
    id: Any
    name: str
    arguments: Any
    raw: dict[str, Any]


def iter_tool_calls(tool_calls: Any, where: str) -> Iterator[AssistantToolCall]:
    """The calls of an assistant message's `tool_calls` array, each an object naming its function."""
    if not isinstance(tool_calls, list):
        raise InvalidRequestError(f"{where}.tool_calls must be an array", param=f"{where}.tool_calls")
    for k, call in enumerate(tool_calls):
        at = f"{where}.tool_calls[{k}]"
        if not isinstance(call, dict):
            raise InvalidRequestError(f"{at} must be an object", param=at)
        function = call.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequestError(f"{at}.function.name is required", param=f"{at}.function.name")
        yield AssistantToolCall(at, call.get("id"), function["name"], function.get("arguments"), call)


def tool_arguments(arguments: Any, where: str) -> dict[str, Any]:
    """OpenAI's JSON-string tool-call arguments as the object most providers want."""
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


def tool_call_id(message: dict[str, Any], where: str, *, allow_empty: bool = True) -> str:
    """The `tool_call_id` of a `tool` message, which every provider needs to link the result."""
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not (call_id or allow_empty):
        raise InvalidRequestError(f"{where}.tool_call_id is required", param=f"{where}.tool_call_id")
    return call_id


class FunctionTool(NamedTuple):
    """One entry of `tools`, checked to be a function tool with a name; the rest as the caller sent it."""

    at: str  # tools[i]
    name: str
    description: Any
    parameters: Any
    strict: bool


def iter_function_tools(tools: Any) -> Iterator[FunctionTool]:
    """The function tools of an OpenAI `tools` array; any other kind of tool is a 400."""
    if not isinstance(tools, list):
        raise InvalidRequestError("'tools' must be an array", param="tools")
    for i, tool in enumerate(tools):
        at = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise InvalidRequestError(f"{at}.type: only function tools are supported", param=f"{at}.type")
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequestError(f"{at}.function.name is required", param=f"{at}.function.name")
        yield FunctionTool(
            at,
            function["name"],
            function.get("description"),
            function.get("parameters"),
            function.get("strict") is True,
        )


def object_schema(parameters: Any, *, typed: bool = False) -> dict[str, Any]:
    """A function's `parameters`, or an empty object schema when it has none.

    `typed` adds `"type": "object"` to a schema that leaves it out (Claude requires it).
    """
    if not isinstance(parameters, dict) or not parameters:
        return {"type": "object", "properties": {}}
    if typed and "type" not in parameters:
        return {"type": "object", **parameters}
    return parameters


def named_function(choice: Any) -> str | None:
    """The function name of a `{"type": "function", "function": {"name": ...}}` tool_choice, else None."""
    if isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if isinstance(name, str):
            return name
    return None


def invalid_tool_choice() -> InvalidRequestError:
    return InvalidRequestError(
        "'tool_choice' must be 'auto', 'required', 'none' or a named function", param="tool_choice"
    )


# ---------------------------------------------------------------------------------------------
# Request: response_format


def response_format_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequestError("'response_format' must be an object", param="response_format")
    return value


def json_schema(response_format: dict[str, Any]) -> dict[str, Any]:
    """The schema of a `{"type": "json_schema", "json_schema": {"schema": ...}}` response_format."""
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if not isinstance(schema, dict):
        raise InvalidRequestError(
            "response_format.json_schema.schema must be an object", param="response_format.json_schema.schema"
        )
    return schema


def invalid_response_format_type() -> InvalidRequestError:
    return InvalidRequestError(
        "response_format.type must be 'text', 'json_object' or 'json_schema'", param="response_format.type"
    )


def require_text_inputs(request: EmbeddingsRequest, provider: str) -> list[str]:
    """An embeddings request's inputs, which must be strings for providers that embed text only."""
    if not all(isinstance(text, str) for text in request.inputs):
        raise InvalidRequestError(
            f"model '{request.model}' (provider {provider}) takes text input only, not token ids",
            param="input",
        )
    return request.inputs


# ---------------------------------------------------------------------------------------------
# Reply: provider bodies in, OpenAI chat.completion out


def reply_json(reply: UpstreamReply) -> Any:
    """A successful reply's JSON body; anything else is a protocol error."""
    try:
        return loads_lenient(reply.body)
    except orjson.JSONDecodeError as exc:
        raise UpstreamProtocolError("the provider's reply is not JSON") from exc


def error_json(raw: bytes) -> Any:
    """An error reply's JSON body, or None when it is empty or not JSON (a proxy answered)."""
    try:
        return loads_lenient(raw) if raw.strip() else None
    except (orjson.JSONDecodeError, UnicodeDecodeError):
        return None


def body_snippet(raw: bytes) -> str:
    """The start of a non-JSON body (HTML, plain text) on one line, short enough for a message."""
    return " ".join(raw[:1000].decode("utf-8", "replace").split())[:300]


def proxy_message(status: int, raw: bytes) -> str:
    """The message for an error a proxy or load balancer sent instead of the API."""
    text = body_snippet(raw)
    return f"the provider returned HTTP {status}" + (f": {text}" if text else "")


def tool_call(call_id: Any, name: Any, arguments: str) -> dict[str, Any]:
    """One OpenAI tool call of a reply message."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def assistant_message(texts: list[str], tool_calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The assistant `message` of a choice; its content is null when it only calls tools."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if tool_calls and not texts else "".join(texts),
        "refusal": None,
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def choice(
    message: dict[str, Any], finish_reason: str, *, index: int = 0, logprobs: Any = None
) -> dict[str, Any]:
    return {"index": index, "message": message, "logprobs": logprobs, "finish_reason": finish_reason}


def chat_response(
    response_id: Any, model: str, choices: list[dict[str, Any]], usage: Usage | None
) -> ChatResponse:
    """The OpenAI `chat.completion` for translated choices; the finish reason is the first choice's."""
    response: dict[str, Any] = {
        "id": response_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        response["usage"] = usage.to_openai()
    return ChatResponse(
        content=orjson.dumps(response), usage=usage, finish_reason=choices[0]["finish_reason"]
    )


# ---------------------------------------------------------------------------------------------
# Stream: provider events in, OpenAI chat.completion.chunk frames out


def event_json(data: bytes, what: str = "event") -> dict[str, Any]:
    """One stream event's JSON object (`what` names the unit in the error: event, line)."""
    try:
        payload = loads_lenient(data)
    except orjson.JSONDecodeError as exc:
        raise UpstreamProtocolError(f"the provider sent a stream {what} that is not JSON") from exc
    if not isinstance(payload, dict):
        raise UpstreamProtocolError(f"the provider sent a stream {what} that is not a JSON object")
    return payload


def tool_call_delta(index: int, call_id: Any, name: Any, arguments: str = "") -> dict[str, Any]:
    """The delta that opens tool call `index` (its arguments may follow in `arguments_delta`s)."""
    return {
        "index": index,
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def arguments_delta(index: int, fragment: str) -> dict[str, Any]:
    """A fragment of the JSON arguments of tool call `index`."""
    return {"index": index, "function": {"arguments": fragment}}


class ChunkStream(StreamTranslator):
    """A translated stream: OpenAI chunk frames sharing one id, creation time and model.

    Subclasses keep their provider's per-stream state and call `chunk` for each delta and
    `closing` once the provider's stream is complete.
    """

    __slots__ = ("created", "id", "include_usage", "model")

    def __init__(self, chunk_id: str | None, model: str, include_usage: bool) -> None:
        self.usage: Usage | None = None
        self.finished = False
        self.include_usage = include_usage
        self.id = chunk_id
        self.created = int(time.time())
        self.model = model

    def chunk(
        self, delta: dict[str, Any], finish_reason: str | None = None, *, index: int = 0, logprobs: Any = None
    ) -> bytes:
        frame: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
            ],
        }
        if self.include_usage:
            frame["usage"] = None  # as OpenAI does on every chunk but the usage one
        return sse_frame(orjson.dumps(frame))

    def closing(self) -> list[bytes]:
        """The stream's last frames: the usage chunk when the caller asked for it, then `[DONE]`."""
        self.finished = True
        frames: list[bytes] = []
        if self.include_usage:
            usage_chunk: dict[str, Any] = {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": (self.usage or Usage()).to_openai(),
            }
            frames.append(sse_frame(orjson.dumps(usage_chunk)))
        frames.append(DONE_FRAME)
        return frames
