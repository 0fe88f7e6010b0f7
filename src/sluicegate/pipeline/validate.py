"""Parse and check a Chat Completions body before any provider sees it.

Bad input gets a 400 that names the parameter, in OpenAI's words where OpenAI has them; the
checks are on shape and type only (a provider knows its own ranges better than we do).
"""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import InvalidJSONError, InvalidRequestError
from ..types import ChatRequest

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})

_NUMBER = (int, float)
# parameter -> (accepted types, description for the error message)
_TYPED: dict[str, tuple[tuple[type, ...], str]] = {
    "temperature": (_NUMBER, "a number"),
    "top_p": (_NUMBER, "a number"),
    "frequency_penalty": (_NUMBER, "a number"),
    "presence_penalty": (_NUMBER, "a number"),
    "max_tokens": ((int,), "an integer"),
    "max_completion_tokens": ((int,), "an integer"),
    "n": ((int,), "an integer"),
    "seed": ((int,), "an integer"),
    "top_logprobs": ((int,), "an integer"),
    "logprobs": ((bool,), "a boolean"),
    "parallel_tool_calls": ((bool,), "a boolean"),
    "stop": ((str, list), "a string or an array of strings"),
    "tools": ((list,), "an array"),
    "tool_choice": ((str, dict), "a string or an object"),
    "response_format": ((dict,), "an object"),
    "stream_options": ((dict,), "an object"),
    "user": ((str,), "a string"),
    "metadata": ((dict,), "an object"),
}


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise InvalidJSONError("request body is empty; expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson rejects invalid UTF-8 and nesting deeper than 1024 levels with its own message.
        raise InvalidJSONError(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidJSONError(f"request body must be a JSON object, got {type(body).__name__}")
    return body


def wrong_type(name: str, expected: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"invalid type for '{name}': expected {expected}", param=name, code="invalid_type"
    )


def require_model(body: dict[str, Any]) -> str:
    """The body's `model`: present and a non-empty string (every model surface starts here)."""
    model = body.get("model")
    if model is None:
        raise InvalidRequestError(
            "missing required parameter: 'model'", param="model", code="missing_required_parameter"
        )
    if not isinstance(model, str) or not model:
        raise wrong_type("model", "a non-empty string")
    return model


def check_types(body: dict[str, Any], table: dict[str, tuple[tuple[type, ...], str]]) -> bool:
    """Check `stream` and every parameter named in `table` (null passes); returns whether to stream."""
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise wrong_type("stream", "a boolean")
    # Walk the caller's keys (usually a handful), not the table of every typed parameter.
    for name, value in body.items():
        spec = table.get(name)
        if spec is None or value is None:
            continue
        types, expected = spec
        # bool is an int subclass: `"max_tokens": true` must not pass as an integer.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise wrong_type(name, expected)
    return bool(stream)


def checked_request(body: dict[str, Any], model: str, stream: bool) -> ChatRequest:
    """The `ChatRequest` of a checked body: gateway controls taken out, the caller's usage wish read."""
    # Per-request gateway controls (SPEC §6) never reach the provider; the router reads them.
    controls = body.pop("sluicegate", None)
    include_usage = False
    if stream:
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
    return ChatRequest(body=body, model=model, stream=stream, include_usage=include_usage, controls=controls)


def chat_request(body: dict[str, Any]) -> ChatRequest:
    model = require_model(body)
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequestError(
            "missing required parameter: 'messages'", param="messages", code="missing_required_parameter"
        )
    if not isinstance(messages, list) or not messages:
        raise InvalidRequestError(
            "'messages' must be a non-empty array", param="messages", code="invalid_type"
        )
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise wrong_type(f"messages[{index}]", "an object")
        role = message.get("role")
        if role not in ROLES:
            raise InvalidRequestError(
                f"invalid value for 'messages[{index}].role': expected one of "
                f"{', '.join(sorted(ROLES))}, got {role!r}",
                param=f"messages[{index}].role",
                code="invalid_value",
            )
    return checked_request(body, model, check_types(body, _TYPED))
