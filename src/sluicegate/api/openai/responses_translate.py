"""Pure translation between the OpenAI Responses API (reference §1.9) and Chat Completions.

`parse_request` checks a `POST /v1/responses` body and turns it into a `ResponsesPlan`: the chat
messages of this turn (input items and `instructions`), the chat parameters the Responses fields
map to, and the fields the Response object echoes back. `ResponsesPlan.chat_body` joins that to
the stored conversation of `previous_response_id`. On the way back, `completion_output` turns a
`chat.completion` into Responses output items, `build_response` wraps them in a Response object,
and `output_message` turns output items into the assistant chat message that is kept for the next
turn. The stream encoder (responses.py) shares these helpers.

Nothing here does I/O; the handlers in responses.py join it to the store and the pipeline.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ...errors import InvalidRequestError
from ...types import Usage

# Chat `finish_reason` -> (Response `status`, `incomplete_details.reason`).
_STATUS = {
    "length": ("incomplete", "max_output_tokens"),
    "content_filter": ("incomplete", "content_filter"),
}

_MESSAGE_ROLES = ("user", "assistant", "system", "developer")
# Input item types that carry nothing a chat model can use (we never emit them ourselves, but a
# caller replaying another backend's `output` may): skipped rather than refused.
_SKIPPED_ITEMS = frozenset({"reasoning"})

# Request keys that change nothing a chat model could do, accepted and not forwarded:
# `include` asks for extra output data we never have (logprobs, encrypted reasoning...),
# `stream_options` only controls obfuscation padding, `max_tool_calls` limits built-in tools.
_IGNORED = frozenset({"include", "stream_options", "max_tool_calls"})
# Request keys forwarded under the same name (Chat Completions has them too).
_FORWARDED = ("parallel_tool_calls", "temperature", "top_p", "user", "safety_identifier", "prompt_cache_key")
_FORWARDED_AS_IS = ("service_tier", "prompt_cache_retention")
# Keys the OpenAI API has but the gateway cannot serve; a clear 400 beats silently different results.
_REFUSED = {
    "conversation": "the Conversations API is not supported; chain turns with 'previous_response_id'",
    "prompt": "stored prompt templates are not supported; send 'instructions' and 'input'",
}
_KNOWN = frozenset(
    {
        "model", "input", "instructions", "tools", "tool_choice", "max_output_tokens", "text", "reasoning",
        "previous_response_id", "store", "stream", "metadata", "truncation", "background", "top_logprobs",
        "sluicegate", *_IGNORED, *_FORWARDED, *_FORWARDED_AS_IS, *_REFUSED,
    }
)  # fmt: skip

_NUMBER = (int, float)
# parameter -> (accepted types, description for the error message)
_TYPED: dict[str, tuple[tuple[type, ...], str]] = {
    "model": ((str,), "a string"),
    "instructions": ((str,), "a string"),
    "tools": ((list,), "an array"),
    "tool_choice": ((str, dict), "a string or an object"),
    "max_output_tokens": ((int,), "an integer"),
    "temperature": (_NUMBER, "a number"),
    "top_p": (_NUMBER, "a number"),
    "text": ((dict,), "an object"),
    "reasoning": ((dict,), "an object"),
    "previous_response_id": ((str,), "a string"),
    "store": ((bool,), "a boolean"),
    "stream": ((bool,), "a boolean"),
    "parallel_tool_calls": ((bool,), "a boolean"),
    "metadata": ((dict,), "an object"),
    "truncation": ((str,), "a string"),
    "background": ((bool,), "a boolean"),
    "top_logprobs": ((int,), "an integer"),
    "user": ((str,), "a string"),
    "safety_identifier": ((str,), "a string"),
    "prompt_cache_key": ((str,), "a string"),
    "include": ((list,), "an array"),
}


def new_id(prefix: str) -> str:
    """An id in OpenAI's style (`resp_`, `msg_`, `fc_` + 48 hex digits)."""
    return prefix + os.urandom(24).hex()


def _bad(message: str, param: str, code: str | None = None) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code=code)


def _wrong_type(param: str, expected: str) -> InvalidRequestError:
    return _bad(f"invalid type for '{param}': expected {expected}", param, "invalid_type")


@dataclass(slots=True)
class ResponsesPlan:
    """One `POST /v1/responses` call, translated; see the module docstring."""

    model: str
    stream: bool
    store: bool
    previous_response_id: str | None
    # The `instructions` as a system message; not carried to the next turn (OpenAI's rule).
    system: dict[str, Any] | None
    # This turn's input items as chat messages: what the next turn inherits.
    input_messages: list[dict[str, Any]]
    # Chat Completions parameters other than model/messages/stream.
    chat_params: dict[str, Any]
    # Fields the Response object reports back (instructions, tools, tool_choice, ...).
    echo: dict[str, Any] = field(default_factory=dict)
    max_output_tokens: int | None = None

    def chat_body(
        self, history: list[dict[str, Any]] | None = None, token_field: str = "max_tokens"
    ) -> dict[str, Any]:
        """The Chat Completions body: instructions, then the stored conversation, then this turn.

        `token_field` carries `max_output_tokens`: `max_tokens` is what every chat provider reads,
        `max_completion_tokens` what OpenAI's reasoning models insist on (same meaning).
        """
        messages: list[dict[str, Any]] = [self.system] if self.system is not None else []
        if history:
            messages.extend(history)
        messages.extend(self.input_messages)
        body: dict[str, Any] = {"model": self.model, "messages": messages}
        body.update(self.chat_params)
        if self.max_output_tokens is not None:
            body[token_field] = self.max_output_tokens
        if self.stream:
            body["stream"] = True
        return body


# ---------------------------------------------------------------------------------------------
# Request: Responses body -> plan


def parse_request(body: dict[str, Any]) -> ResponsesPlan:
    """Check a Responses request body and translate it; raises InvalidRequestError naming the field."""
    for name, value in body.items():
        if name not in _KNOWN:
            raise _bad(f"unknown parameter: '{name}'", name, "unknown_parameter")
        if value is None:
            continue  # null is "not given", as OpenAI treats it
        spec = _TYPED.get(name)
        if spec is not None:
            types, expected = spec
            # bool is an int subclass: `"max_output_tokens": true` must not pass as an integer.
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise _wrong_type(name, expected)
    for name, why in _REFUSED.items():
        if body.get(name) is not None:
            raise _bad(
                f"parameter '{name}' is not supported by the gateway: {why}", name, "unsupported_parameter"
            )
    if body.get("background"):
        raise _bad(
            "parameter 'background' is not supported by the gateway: responses run in the foreground",
            "background",
            "unsupported_parameter",
        )
    if body.get("top_logprobs"):
        raise _bad(
            "parameter 'top_logprobs' is not supported on /v1/responses by the gateway",
            "top_logprobs",
            "unsupported_parameter",
        )
    truncation = body.get("truncation")
    if truncation is not None and truncation not in ("auto", "disabled"):
        raise _bad(
            f"invalid value for 'truncation': expected 'auto' or 'disabled', got {truncation!r}",
            "truncation",
            "invalid_value",
        )

    model = body.get("model")
    if not model:
        raise _bad("missing required parameter: 'model'", "model", "missing_required_parameter")
    if "input" not in body or body["input"] is None:
        raise _bad("missing required parameter: 'input'", "input", "missing_required_parameter")
    input_messages = input_to_messages(body["input"])

    instructions = body.get("instructions")
    system = {"role": "system", "content": instructions} if instructions else None

    chat: dict[str, Any] = {}
    echo: dict[str, Any] = {}
    tools = body.get("tools")
    if tools is not None:
        chat["tools"] = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
        echo["tools"] = tools
    choice = body.get("tool_choice")
    if choice is not None:
        chat["tool_choice"] = _tool_choice(choice)
        echo["tool_choice"] = choice
    for name in _FORWARDED:
        if body.get(name) is not None:
            chat[name] = body[name]
    for name in _FORWARDED_AS_IS:
        if body.get(name) is not None:
            chat[name] = body[name]
    text = body.get("text")
    if text is not None:
        _text_options(text, chat)
        echo["text"] = text
    reasoning = body.get("reasoning")
    if reasoning is not None:
        effort = reasoning.get("effort")
        if effort is not None:
            chat["reasoning_effort"] = effort
        echo["reasoning"] = reasoning
    metadata = body.get("metadata")
    if metadata is not None:
        for key, value in metadata.items():
            if not isinstance(value, str):
                raise _wrong_type(f"metadata.{key}", "a string")
        echo["metadata"] = metadata
    for name in ("instructions", "max_output_tokens", "temperature", "top_p", "user", "truncation"):
        if body.get(name) is not None:
            echo[name] = body[name]
    if "parallel_tool_calls" in chat:
        echo["parallel_tool_calls"] = chat["parallel_tool_calls"]
    if body.get("sluicegate") is not None:
        chat["sluicegate"] = body["sluicegate"]  # gateway controls, stripped before any provider

    store = body.get("store")
    previous = body.get("previous_response_id")
    return ResponsesPlan(
        model=model,
        stream=body.get("stream") is True,
        store=store is not False,
        previous_response_id=previous or None,
        system=system,
        input_messages=input_messages,
        chat_params=chat,
        echo=echo,
        max_output_tokens=body.get("max_output_tokens"),
    )


def _text_options(text: dict[str, Any], chat: dict[str, Any]) -> None:
    fmt = text.get("format")
    if fmt is not None:
        if not isinstance(fmt, dict):
            raise _wrong_type("text.format", "an object")
        kind = fmt.get("type")
        if kind == "json_object":
            chat["response_format"] = {"type": "json_object"}
        elif kind == "json_schema":
            name, schema = fmt.get("name"), fmt.get("schema")
            if not isinstance(name, str) or not name:
                raise _bad(
                    "missing required parameter: 'text.format.name'",
                    "text.format.name",
                    "missing_required_parameter",
                )
            if not isinstance(schema, dict):
                raise _bad(
                    "missing required parameter: 'text.format.schema' (an object)",
                    "text.format.schema",
                    "missing_required_parameter",
                )
            spec: dict[str, Any] = {"name": name, "schema": schema}
            for key in ("description", "strict"):
                if fmt.get(key) is not None:
                    spec[key] = fmt[key]
            chat["response_format"] = {"type": "json_schema", "json_schema": spec}
        elif kind != "text":
            raise _bad(
                f"invalid value for 'text.format.type': expected 'text', 'json_object' or 'json_schema', "
                f"got {kind!r}",
                "text.format.type",
                "invalid_value",
            )
    if text.get("verbosity") is not None:
        chat["verbosity"] = text["verbosity"]


def _tool(tool: Any, where: str) -> dict[str, Any]:
    """A flat Responses function tool -> a nested Chat Completions tool; built-in tools are refused."""
    if not isinstance(tool, dict):
        raise _wrong_type(where, "an object")
    kind = tool.get("type")
    if kind != "function":
        raise _bad(
            f"{where}.type: tool type {kind!r} is not supported by the gateway; only function tools "
            f'({{"type": "function", "name": ...}}) work with every model',
            f"{where}.type",
            "unsupported_tool",
        )
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise _bad(
            f"missing required parameter: '{where}.name'", f"{where}.name", "missing_required_parameter"
        )
    function: dict[str, Any] = {"name": name}
    # The SDK sends `parameters`/`strict` as null when not given: absent, not null, upstream.
    for key in ("description", "parameters", "strict"):
        if tool.get(key) is not None:
            function[key] = tool[key]
    return {"type": "function", "function": function}


def _named(tool: Any, where: str) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("name"), str):
        raise _bad(f'{where} must be {{"type": "function", "name": ...}}', where, "invalid_value")
    return {"type": "function", "function": {"name": tool["name"]}}


def _tool_choice(choice: Any) -> Any:
    if choice in ("none", "auto", "required"):
        return choice
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "function":
            return _named(choice, "tool_choice")
        if kind == "allowed_tools":
            tools = choice.get("tools")
            if not isinstance(tools, list):
                raise _wrong_type("tool_choice.tools", "an array")
            allowed = [_named(tool, f"tool_choice.tools[{i}]") for i, tool in enumerate(tools)]
            mode = choice.get("mode", "auto")
            return {"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": allowed}}
        raise _bad(
            f"tool_choice.type: {kind!r} is not supported by the gateway; use 'none', 'auto', 'required', "
            f"a function or allowed_tools",
            "tool_choice.type",
            "unsupported_tool",
        )
    raise _bad(
        f"invalid value for 'tool_choice': expected 'none', 'auto', 'required' or an object, got {choice!r}",
        "tool_choice",
        "invalid_value",
    )


def input_to_messages(value: Any) -> list[dict[str, Any]]:
    """`input` (a string or a list of items) -> chat messages, in order."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise _wrong_type("input", "a string or an array of input items")
    if not value:
        raise _bad("'input' must not be empty", "input", "empty_array")
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise _wrong_type(where, "an object")
        kind = item.get("type")
        if kind is None and "role" in item:
            kind = "message"
        if kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            _append_call(messages, item, where)
        elif kind == "function_call_output":
            messages.append(_call_output(item, where))
        elif kind in _SKIPPED_ITEMS:
            continue
        else:
            raise _bad(
                f"{where}.type: input item type {kind!r} is not supported by the gateway; use 'message', "
                f"'function_call' or 'function_call_output'",
                f"{where}.type",
                "unsupported_input",
            )
    return messages


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in _MESSAGE_ROLES:
        raise _bad(
            f"invalid value for '{where}.role': expected one of {', '.join(_MESSAGE_ROLES)}, got {role!r}",
            f"{where}.role",
            "invalid_value",
        )
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise _wrong_type(f"{where}.content", "a string or an array of content parts")
    parts = [_part(part, role, f"{where}.content[{j}]") for j, part in enumerate(content)]
    # All-text content goes upstream as one string: the form every provider adapter reads best.
    if all(part["type"] == "text" for part in parts):
        return {"role": role, "content": "".join(part["text"] for part in parts)}
    return {"role": role, "content": parts}


def _part(part: Any, role: str, where: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise _wrong_type(where, "an object")
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        text = part.get("text")
        if not isinstance(text, str):
            raise _bad(
                f"missing required parameter: '{where}.text'", f"{where}.text", "missing_required_parameter"
            )
        return {"type": "text", "text": text}
    if kind == "refusal" and role == "assistant":
        refusal = part.get("refusal")
        if not isinstance(refusal, str):
            raise _bad(f"missing required parameter: '{where}.refusal'", f"{where}.refusal")
        return {"type": "refusal", "refusal": refusal}
    if kind == "input_image" and role == "user":
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            what = "file ids ('file_id') are" if part.get("file_id") else "an 'image_url' is"
            raise _bad(
                f"{where}: {what} not supported for images by the gateway; send 'image_url' as an "
                f"http(s) URL or a data URL",
                f"{where}.image_url",
            )
        image: dict[str, Any] = {"url": url}
        if part.get("detail") is not None:
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file" and role == "user":
        file: dict[str, Any] = {}
        for key in ("file_data", "file_id", "filename"):
            if part.get(key) is not None:
                file[key] = part[key]
        if "file_data" not in file and "file_id" not in file:
            raise _bad(
                f"{where}: send 'file_data' (a data URL) or 'file_id'; "
                "'file_url' is not supported by the gateway",
                where,
            )
        return {"type": "file", "file": file}
    raise _bad(
        f"{where}.type: content part {kind!r} is not supported in a {role} message",
        f"{where}.type",
        "invalid_value",
    )


def _append_call(messages: list[dict[str, Any]], item: dict[str, Any], where: str) -> None:
    """A `function_call` item joins the assistant message right before it (parallel calls, text + calls)."""
    for key in ("call_id", "name", "arguments"):
        if not isinstance(item.get(key), str):
            raise _bad(
                f"missing required parameter: '{where}.{key}' (a string)",
                f"{where}.{key}",
                "missing_required_parameter",
            )
    call = {
        "id": item["call_id"],
        "type": "function",
        "function": {"name": item["name"], "arguments": item["arguments"]},
    }
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant" and isinstance(last.get("content"), str | None):
        last.setdefault("tool_calls", []).append(call)
        if last.get("content") == "":
            del last["content"]  # a call-only turn: "absent" reads better upstream than empty text
        return
    messages.append({"role": "assistant", "tool_calls": [call]})


def _call_output(item: dict[str, Any], where: str) -> dict[str, Any]:
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise _bad(
            f"missing required parameter: '{where}.call_id'", f"{where}.call_id", "missing_required_parameter"
        )
    output = item.get("output")
    if isinstance(output, str):
        return {"role": "tool", "tool_call_id": call_id, "content": output}
    if isinstance(output, list):
        texts = []
        for j, part in enumerate(output):
            at = f"{where}.output[{j}]"
            if not isinstance(part, dict) or part.get("type") not in ("input_text", "output_text"):
                raise _bad(f"{at}: only text parts are supported in a function call output", at)
            if not isinstance(part.get("text"), str):
                raise _bad(
                    f"missing required parameter: '{at}.text'", f"{at}.text", "missing_required_parameter"
                )
            texts.append(part["text"])
        return {"role": "tool", "tool_call_id": call_id, "content": "".join(texts)}
    raise _wrong_type(f"{where}.output", "a string or an array of text parts")


# ---------------------------------------------------------------------------------------------
# Response: chat completion -> output items -> Response object


def status_of(finish_reason: str | None) -> tuple[str, str | None]:
    """Chat `finish_reason` -> (Response `status`, `incomplete_details.reason` or None)."""
    found = _STATUS.get(finish_reason or "")
    return found if found is not None else ("completed", None)


def usage_object(usage: Usage | None) -> dict[str, Any] | None:
    """Our usage -> Responses `usage` (input includes cached tokens, output includes reasoning)."""
    if usage is None:
        return None
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def citations(raw: Any) -> list[dict[str, Any]]:
    """Chat `message.annotations` (nested url citations) -> Responses' flat annotations."""
    out: list[dict[str, Any]] = []
    if not isinstance(raw, list):
        return out
    for entry in raw:
        if isinstance(entry, dict) and entry.get("type") == "url_citation":
            cite = entry.get("url_citation")
            if isinstance(cite, dict):
                out.append({"type": "url_citation", **cite})
    return out


def completion_output(completion: Any) -> tuple[list[dict[str, Any]], str | None]:
    """A `chat.completion` body -> (Responses output items, all "completed"; the chat finish_reason)."""
    choices = completion.get("choices") if isinstance(completion, dict) else None
    choice: dict[str, Any] = {}
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        message = {}
    finish = choice.get("finish_reason")
    output: list[dict[str, Any]] = []
    text = message.get("content")
    refusal = message.get("refusal")
    raw_calls = message.get("tool_calls")
    calls: list[Any] = raw_calls if isinstance(raw_calls, list) else []
    parts: list[dict[str, Any]] = []
    if isinstance(text, str) and (text or (not calls and not refusal)):
        parts.append(
            {"type": "output_text", "text": text, "annotations": citations(message.get("annotations"))}
        )
    if isinstance(refusal, str) and refusal:
        parts.append({"type": "refusal", "refusal": refusal})
    if parts or not calls:
        if not parts:  # no content at all: still one (empty) message, as OpenAI reports it
            parts.append({"type": "output_text", "text": "", "annotations": []})
        output.append(
            {
                "id": new_id("msg_"),
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": parts,
            }
        )
    for call in calls:
        if not isinstance(call, dict):
            continue
        raw_function = call.get("function")
        function: dict[str, Any] = raw_function if isinstance(raw_function, dict) else {}
        arguments = function.get("arguments")
        output.append(
            {
                "id": new_id("fc_"),
                "type": "function_call",
                "status": "completed",
                "arguments": arguments if isinstance(arguments, str) else "",
                "call_id": call.get("id") if isinstance(call.get("id"), str) else new_id("call_"),
                "name": function.get("name") if isinstance(function.get("name"), str) else "",
            }
        )
    return output, finish if isinstance(finish, str) else None


def output_message(output: list[dict[str, Any]]) -> dict[str, Any]:
    """Output items -> the assistant chat message a later turn sends back upstream."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in output:
        if item["type"] == "message":
            for part in item["content"]:
                if part["type"] == "output_text":
                    texts.append(part["text"])
        elif item["type"] == "function_call":
            calls.append(
                {
                    "id": item["call_id"],
                    "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]},
                }
            )
    message: dict[str, Any] = {"role": "assistant"}
    text = "".join(texts)
    if text or not calls:
        message["content"] = text
    if calls:
        message["tool_calls"] = calls
    return message


def build_response(
    plan: ResponsesPlan,
    response_id: str,
    created_at: int,
    status: str,
    output: list[dict[str, Any]],
    usage: Usage | None,
    incomplete_reason: str | None = None,
    completed_at: int | None = None,
) -> dict[str, Any]:
    """The Response object (reference §1.9), with the echo fields the official SDK's model expects."""
    echo = plan.echo
    response: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "instructions": echo.get("instructions"),
        "max_output_tokens": echo.get("max_output_tokens"),
        "model": plan.model,
        "output": output,
        "parallel_tool_calls": echo.get("parallel_tool_calls", True),
        "previous_response_id": plan.previous_response_id,
        "reasoning": echo.get("reasoning", {"effort": None, "summary": None}),
        "store": plan.store,
        "temperature": echo.get("temperature"),
        "text": echo.get("text", {"format": {"type": "text"}}),
        "tool_choice": echo.get("tool_choice", "auto"),
        "tools": echo.get("tools", []),
        "top_p": echo.get("top_p"),
        "truncation": echo.get("truncation", "disabled"),
        "usage": usage_object(usage),
        "user": echo.get("user"),
        "metadata": echo.get("metadata", {}),
    }
    if completed_at is not None:
        response["completed_at"] = completed_at
    return response
