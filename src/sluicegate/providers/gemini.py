"""Google Gemini API (AI Studio): OpenAI Chat Completions translated to `generateContent` and back.

Requests are rewritten per reference §4.7: system and developer messages become
`systemInstruction`; user and assistant messages become `contents` with roles `user`/`model`
(same-role neighbours merged); images become `inlineData` (data URLs) or `fileData` (URLs);
assistant tool calls and tool results become `functionCall` / `functionResponse` parts, the
result's function name looked up from the earlier call's id; tools become `functionDeclarations`
whose JSON schemas are cleaned down to the OpenAPI subset Gemini accepts; sampling parameters
go into `generationConfig`. Replies and stream events are rebuilt as OpenAI `chat.completion`
objects and `chat.completion.chunk` frames, with minted tool-call ids (Gemini's calls usually
have none) and usage normalised per reference §8.

The request and reply translation are module-level pure functions so that `vertex.py`, which
sends the same `GenerateContentRequest` to another URL, reuses them unchanged.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Mapping
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
    named_function,
    parse_data_url,
    proxy_message,
    reply_json,
    requested,
    stop_sequences,
    tool_arguments,
    tool_call,
    tool_call_id,
    unsupported_role,
)
from .base import ALL_CHAT, EMBEDDINGS, Adapter, StreamTranslator, retry_hint_headers

if TYPE_CHECKING:
    from ..config.schema import ModelEntry
    from ..upstream.sse import SSEEvent

_DEFAULT_API_BASE = "https://generativelanguage.googleapis.com"
_API_VERSION = "v1beta"

# Gemini `finishReason` -> OpenAI `finish_reason` (reference §8). A turn that calls functions
# still ends with STOP; callers turn "stop" into "tool_calls" when the candidate made calls.
_FINISH_REASONS = {
    "STOP": "stop",
    "OTHER": "stop",
    "FINISH_REASON_UNSPECIFIED": "stop",
    "NO_IMAGE": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "LANGUAGE": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_OTHER": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}
# Finish reasons that mean the turn failed (reference §8 "(error)"): the model produced a function
# call it was not allowed to make or could not be parsed. Nothing usable came back, and the same
# request may well succeed when tried again, so they surface as a retryable provider error.
_FAILED_FINISH = frozenset({"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"})

# OpenAI `reasoning_effort` -> Gemini `thinkingConfig.thinkingBudget` (tokens), the budgets Google's
# own OpenAI-compatible endpoint documents for low/medium/high; "none" turns thinking off.
_THINKING_BUDGETS = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576}
_THINKING_MAX = 24576  # xhigh / max and efforts added later: the highest budget documented

# OpenAI parameters with no Gemini equivalent.
_UNSUPPORTED = ("logit_bias",)

# The OpenAPI-subset `Schema` keywords Gemini accepts in `parameters` (reference §4.2); every other
# JSON Schema keyword (`additionalProperties`, `$schema`, `$defs`, `strict`, ...) is rejected as an
# unknown field, so the cleaner drops it.
_SCHEMA_COPY = frozenset(
    {
        "title", "description", "nullable", "minItems", "maxItems", "minProperties", "maxProperties",
        "minimum", "maximum", "minLength", "maxLength", "pattern", "example", "propertyOrdering", "default",
    }
)  # fmt: skip
_SCHEMA_TYPES = frozenset({"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"})
# `format` values Gemini accepts per type; others (email, uri, ...) get a 400 from the API.
_FORMATS = {
    "STRING": frozenset({"enum", "date-time"}),
    "NUMBER": frozenset({"float", "double"}),
    "INTEGER": frozenset({"int32", "int64"}),
}
_MAX_SCHEMA_DEPTH = 32

# File extension -> MIME type for `fileData` URLs (Gemini wants the type; URLs rarely say it).
_MIME_BY_EXTENSION = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "heic": "image/heic",
    "heif": "image/heif",
    "pdf": "application/pdf",
    "txt": "text/plain",
    "mp3": "audio/mp3",
    "wav": "audio/wav",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "mp4": "video/mp4",
    "mov": "video/mov",
    "webm": "video/webm",
}

# Google's canonical error `status` -> the OpenAI error type of the same HTTP status.
_STATUS_BY_NAME = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "INTERNAL": 500,
    "UNKNOWN": 500,
    "DATA_LOSS": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}


def mint_call_id() -> str:
    """An OpenAI-style tool-call id for a Gemini function call that came without one."""
    return "call_" + secrets.token_hex(12)


def finish_reason(raw: Any, made_calls: bool) -> str:
    mapped = _FINISH_REASONS.get(raw, "stop") if isinstance(raw, str) else "stop"
    return "tool_calls" if mapped == "stop" and made_calls else mapped


def usage_from_metadata(raw: Any) -> Usage | None:
    """`usageMetadata` -> ours (reference §4.3): thoughts count as completion and as reasoning tokens."""
    if not isinstance(raw, dict):
        return None
    thoughts = int_or_zero(raw.get("thoughtsTokenCount"))
    return Usage(
        prompt_tokens=int_or_zero(raw.get("promptTokenCount"))
        + int_or_zero(raw.get("toolUsePromptTokenCount")),
        completion_tokens=int_or_zero(raw.get("candidatesTokenCount")) + thoughts,
        cached_tokens=int_or_zero(raw.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
    )


# ---------------------------------------------------------------------------------------------
# Errors


def _retry_delay_s(details: Any) -> int | None:
    """`google.rpc.RetryInfo.retryDelay` ("7s", "0.5s") as whole seconds, rounded up."""
    if not isinstance(details, list):
        return None
    for detail in details:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                try:
                    return max(1, math.ceil(float(delay[:-1])))
                except ValueError:
                    return None
    return None


def _error_reason(details: Any) -> str | None:
    """`google.rpc.ErrorInfo.reason` (API_KEY_INVALID, RATE_LIMIT_EXCEEDED, ...), when given."""
    if isinstance(details, list):
        for detail in details:
            if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.ErrorInfo"):
                reason = detail.get("reason")
                if isinstance(reason, str) and reason:
                    return reason
    return None


def is_google_error(body: Any) -> bool:
    """Whether `body` is Google's `{"error": {"code", "message", "status"}}` envelope (or a list of one)."""
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    if not isinstance(body, dict):
        return False
    error = body.get("error")
    return isinstance(error, dict) and ("status" in error or isinstance(error.get("code"), int))


def google_error(
    body: Any, status: int, headers: Mapping[str, str], fallback: str | None = None
) -> UpstreamStatusError:
    """Google's error envelope (reference §4.6) -> UpstreamStatusError.

    The code is the ErrorInfo reason when there is one (it says more: API_KEY_INVALID), else the
    canonical status (RESOURCE_EXHAUSTED). A RetryInfo delay becomes `retry-after` when the
    response has no such header, so the caller's SDK backs off as long as Google asked. The OpenAI
    error type follows from the status (errors.py), as for every non-OpenAI provider.
    """
    if isinstance(body, list) and len(body) == 1:
        body = body[0]  # some Google front ends wrap the error in a one-element array
    message: str | None = None
    code: str | None = None
    delay: int | None = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        raw_message = error.get("message")
        message = raw_message if isinstance(raw_message, str) and raw_message else None
        details = error.get("details")
        raw_status = error.get("status")
        code = _error_reason(details) or (raw_status if isinstance(raw_status, str) else None)
        delay = _retry_delay_s(details)
    kept = retry_hint_headers(headers)
    if delay is not None and "retry-after" not in kept and "retry-after-ms" not in kept:
        kept["retry-after"] = str(delay)
    return UpstreamStatusError(
        message or fallback or f"the provider returned HTTP {status}",
        upstream_status=status,
        code=code,
        headers=kept,
    )


def _status_of(error: Any) -> int:
    """HTTP status of an error object found inside a 200 reply or stream."""
    if isinstance(error, dict):
        code = error.get("code")
        if isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599:
            return code
        status = error.get("status")
        if isinstance(status, str):
            return _STATUS_BY_NAME.get(status, 500)
    return 500


def map_reply_error(reply: UpstreamReply) -> GatewayError:
    """A non-2xx Google reply -> our tree, with a readable message when a proxy answered instead."""
    body = error_json(reply.body)
    fallback = None if is_google_error(body) else proxy_message(reply.status, reply.body)
    return google_error(body, reply.status, reply.headers, fallback)


# ---------------------------------------------------------------------------------------------
# Request: OpenAI messages -> systemInstruction + contents


def _text_part(part: Any, at: str) -> str:
    """The text of one OpenAI text (or refusal) part.

    Not `_translate.part_text`: Gemini's 400 for another part type names the part as its `param`,
    where the other adapters name `<part>.type`.
    """
    kind = part.get("type") if isinstance(part, dict) else None
    if kind not in ("text", "refusal"):
        shown = kind if isinstance(part, dict) else type(part).__name__
        raise InvalidRequestError(f"{at}.type: content part {shown!r} is not supported here", param=at)
    text = part.get("text") if kind == "text" else part.get("refusal")
    if not isinstance(text, str):
        raise InvalidRequestError(f"{at}: a text part needs a string 'text'", param=at)
    return text


def _text_of_parts(content: Any, where: str) -> list[str]:
    """String or text parts (system, developer, tool, assistant content) -> non-empty texts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [content] if content else []
    texts = (_text_part(part, at) for at, part in content_parts(content, where))
    return [text for text in texts if text]  # Gemini rejects empty text parts


def _mime_from_url(url: str) -> str | None:
    path = url.split("?", 1)[0].split("#", 1)[0]
    name = path.rsplit("/", 1)[-1]
    if "." not in name:
        return None
    return _MIME_BY_EXTENSION.get(name.rsplit(".", 1)[-1].lower())


def _data_url_part(url: str, at: str) -> dict[str, Any]:
    media_type, data = parse_data_url(url, at)
    return {"inlineData": {"mimeType": media_type, "data": data}}


def _uri_part(url: str, mime_type: Any, at: str) -> dict[str, Any]:
    if not url.startswith(("http://", "https://", "gs://")):
        raise InvalidRequestError(f"{at} must be an http(s) or gs:// URL or a base64 data URL", param=at)
    file_data: dict[str, Any] = {"fileUri": url}
    mime = mime_type if isinstance(mime_type, str) and mime_type else _mime_from_url(url)
    if mime is not None:
        file_data = {"mimeType": mime, "fileUri": url}
    return {"fileData": file_data}


def _image_part(part: dict[str, Any], where: str) -> dict[str, Any]:
    at = f"{where}.image_url.url"
    url, image = image_url(part, at)
    if url.startswith("data:"):
        return _data_url_part(url, at)
    # Not OpenAI: `format` / `mime_type` let a caller name the type of a URL without an extension.
    given = (image.get("mime_type") or image.get("format")) if isinstance(image, dict) else None
    return _uri_part(url, given, at)


def _audio_part(part: dict[str, Any], where: str) -> dict[str, Any]:
    audio = part.get("input_audio")
    data = audio.get("data") if isinstance(audio, dict) else None
    fmt = audio.get("format") if isinstance(audio, dict) else None
    if not isinstance(data, str) or not isinstance(fmt, str):
        raise InvalidRequestError(
            f"{where}.input_audio needs string 'data' and 'format'", param=f"{where}.input_audio"
        )
    return {"inlineData": {"mimeType": f"audio/{fmt}", "data": data}}


def _file_part(part: dict[str, Any], where: str) -> dict[str, Any]:
    file = part.get("file")
    if isinstance(file, dict):
        data = file.get("file_data")
        if isinstance(data, str) and data.startswith("data:"):
            return _data_url_part(data, f"{where}.file.file_data")
        file_id = file.get("file_id")
        if isinstance(file_id, str) and "://" in file_id:
            return _uri_part(file_id, None, f"{where}.file.file_id")
    raise InvalidRequestError(
        f"{where}.file: give file_data as a base64 data URL, or file_id as a Gemini file URI",
        param=f"{where}.file",
    )


def _user_parts(content: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        return [{"text": text} for text in _text_of_parts(content, where)]
    parts: list[dict[str, Any]] = []
    for at, part in content_parts(content, where):
        kind = part.get("type") if isinstance(part, dict) else None
        if isinstance(part, dict) and kind == "image_url":
            parts.append(_image_part(part, at))
        elif isinstance(part, dict) and kind == "input_audio":
            parts.append(_audio_part(part, at))
        elif isinstance(part, dict) and kind == "file":
            parts.append(_file_part(part, at))
        else:
            text = _text_part(part, at)
            if text:
                parts.append({"text": text})
    return parts


def _thought_signature(call: dict[str, Any]) -> str | None:
    """The signature this gateway handed out with a Gemini call (`extra_content.google`), if echoed back."""
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    return signature if isinstance(signature, str) and signature else None


def _model_parts(message: dict[str, Any], where: str, names: dict[str, str]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"text": text} for text in _text_of_parts(message.get("content"), where)]
    tool_calls = message.get("tool_calls")
    if tool_calls is None:
        return parts
    for call in iter_tool_calls(tool_calls, where):
        if isinstance(call.id, str):
            names[call.id] = call.name
        part: dict[str, Any] = {
            "functionCall": {
                "name": call.name,
                "args": tool_arguments(call.arguments, f"{call.at}.function.arguments"),
            }
        }
        signature = _thought_signature(call.raw)
        if signature is not None:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def _function_response(name: str, content: Any, where: str) -> dict[str, Any]:
    text = "".join(_text_of_parts(content, where))
    response: Any = None
    if text[:1] == "{":
        try:
            response = orjson.loads(text)
        except orjson.JSONDecodeError:
            response = None
    # `response` must be a JSON object (proto Struct): a JSON object result goes as is, anything
    # else is wrapped so the model still sees the exact text.
    if not isinstance(response, dict):
        response = {"result": text}
    return {"functionResponse": {"name": name, "response": response}}


def _tool_result_part(message: dict[str, Any], where: str, names: dict[str, str]) -> dict[str, Any]:
    call_id = tool_call_id(message, where)
    name = names.get(call_id)
    if name is None:
        raise InvalidRequestError(
            f"{where}.tool_call_id: {call_id!r} does not match a tool call of an earlier assistant "
            "message (Gemini needs the function's name, which is taken from that call)",
            param=f"{where}.tool_call_id",
        )
    return _function_response(name, message.get("content"), where)


def translate_messages(messages: Any) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """OpenAI `messages` -> (Gemini `systemInstruction`, Gemini `contents`)."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_call id -> function name, for functionResponse.name
    for where, message, role in iter_messages(messages):
        if role in ("system", "developer"):
            system.extend({"text": text} for text in _text_of_parts(message.get("content"), where))
            continue
        if role == "user":
            turn_role, parts = "user", _user_parts(message.get("content"), where)
        elif role == "assistant":
            turn_role, parts = "model", _model_parts(message, where, names)
        elif role == "tool":
            turn_role, parts = "user", [_tool_result_part(message, where, names)]
        elif role == "function":  # the deprecated predecessor of `tool`, which carries the name itself
            name = message.get("name")
            if not isinstance(name, str):
                raise InvalidRequestError(f"{where}.name is required", param=f"{where}.name")
            turn_role, parts = "user", [_function_response(name, message.get("content"), where)]
        else:
            raise unsupported_role(role, where)
        if not parts:
            continue  # Gemini rejects a Content without parts
        # Gemini wants user and model turns to alternate: same-role neighbours become one turn.
        if contents and contents[-1]["role"] == turn_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": turn_role, "parts": parts})
    for content in contents:
        if content["role"] == "user" and len(content["parts"]) > 1:
            # Function responses open the turn that answers the calls (stable sort keeps their order).
            content["parts"].sort(key=lambda part: "functionResponse" not in part)
    return ({"parts": system} if system else None), contents


# ---------------------------------------------------------------------------------------------
# Request: tools and JSON schemas


def _resolve_ref(ref: Any, defs: Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(ref, str):
        for prefix in ("#/$defs/", "#/definitions/"):
            if ref.startswith(prefix):
                found = defs.get(ref[len(prefix) :])
                if isinstance(found, dict):
                    return found
    raise InvalidRequestError(f"schema $ref {ref!r} cannot be resolved (only local #/$defs/ references)")


def _merge_all_of(node: dict[str, Any]) -> dict[str, Any]:
    merged = {k: v for k, v in node.items() if k != "allOf"}
    for sub in node["allOf"] if isinstance(node["allOf"], list) else []:
        if not isinstance(sub, dict):
            continue
        for key, value in sub.items():
            if key == "properties" and isinstance(value, dict):
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required" and isinstance(value, list):
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged.setdefault(key, value)
    return merged


def gemini_schema(node: Any, defs: Mapping[str, Any] | None = None, depth: int = 0) -> dict[str, Any]:
    """A JSON Schema cleaned down to Gemini's OpenAPI-subset `Schema` (reference §4.2).

    Types are upper-cased; `["string", "null"]` and `anyOf [..., {"type": "null"}]` become
    `nullable`; `const` becomes a one-value `enum`; local `$ref`s are inlined; `allOf` is merged;
    keywords Gemini rejects (`additionalProperties`, `$schema`, `$defs`, formats it does not know,
    ...) are dropped. Property names are never touched.
    """
    if not isinstance(node, dict):
        return {}
    if depth > _MAX_SCHEMA_DEPTH:
        raise InvalidRequestError("schema is nested too deeply (or has a recursive $ref) for Gemini")
    if defs is None:
        found = node.get("$defs", node.get("definitions"))
        defs = found if isinstance(found, dict) else {}
    if "$ref" in node:
        node = {**_resolve_ref(node["$ref"], defs), **{k: v for k, v in node.items() if k != "$ref"}}
    if "allOf" in node:
        node = _merge_all_of(node)
    out: dict[str, Any] = {}
    nullable = False

    kind = node.get("type")
    if isinstance(kind, list):
        names = [t for t in kind if isinstance(t, str) and t != "null"]
        nullable = len(names) < len(kind)
        if len(names) > 1:
            out["anyOf"] = [{"type": t.upper()} for t in names]
            kind = None
        else:
            kind = names[0] if names else None
    if isinstance(kind, str) and kind.upper() in _SCHEMA_TYPES:
        out["type"] = kind.upper()

    branches = node.get("anyOf", node.get("oneOf"))
    if isinstance(branches, list):
        kept = []
        for branch in branches:
            if isinstance(branch, dict) and branch.get("type") == "null":
                nullable = True
            else:
                kept.append(gemini_schema(branch, defs, depth + 1))
        if len(kept) == 1:
            out.update({k: v for k, v in kept[0].items() if k not in out})
        elif kept:
            out["anyOf"] = kept

    if "const" in node:
        out["enum"] = [node["const"]]
    elif isinstance(node.get("enum"), list):
        out["enum"] = list(node["enum"])
    if "enum" in out:
        if all(isinstance(value, str) for value in out["enum"]):
            out.setdefault("type", "STRING")
        else:
            del out["enum"]  # Gemini enums are strings only; the type alone still constrains the value

    properties = node.get("properties")
    if isinstance(properties, dict) and properties:
        out["properties"] = {name: gemini_schema(sub, defs, depth + 1) for name, sub in properties.items()}
        out.setdefault("type", "OBJECT")
        required = node.get("required")
        if isinstance(required, list):
            names_required = [name for name in required if isinstance(name, str) and name in properties]
            if names_required:
                out["required"] = names_required
    if isinstance(node.get("items"), dict):
        out["items"] = gemini_schema(node["items"], defs, depth + 1)
        out.setdefault("type", "ARRAY")

    fmt = node.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS.get(out.get("type", ""), ()):
        out["format"] = fmt
    for key in _SCHEMA_COPY:
        if key in node and node[key] is not None:
            out[key] = node[key]
    if nullable:
        out["nullable"] = True
    return out


def _function_declarations(tools: Any) -> list[dict[str, Any]]:
    out = []
    for tool in iter_function_tools(tools):
        declaration: dict[str, Any] = {"name": tool.name}
        if isinstance(tool.description, str):
            declaration["description"] = tool.description
        try:
            parameters = gemini_schema(tool.parameters)
        except InvalidRequestError as exc:
            at = f"{tool.at}.function.parameters"
            raise InvalidRequestError(f"{at}: {exc.message}", param=at) from exc
        # A function without arguments has no `parameters`: Gemini rejects an OBJECT without properties.
        if parameters.get("properties"):
            declaration["parameters"] = parameters
        out.append(declaration)
    return out


def _tool_config(choice: Any) -> tuple[dict[str, Any], list[str] | None]:
    """OpenAI `tool_choice` -> (`functionCallingConfig`, names to keep declared or None for all)."""
    if choice == "auto":
        return {"mode": "AUTO"}, None
    if choice == "required":
        return {"mode": "ANY"}, None
    if choice == "none":
        return {"mode": "NONE"}, None
    name = named_function(choice)
    if name is not None:
        return {"mode": "ANY", "allowedFunctionNames": [name]}, None
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = choice.get("allowed_tools")
        mode = allowed.get("mode") if isinstance(allowed, dict) else None
        tools = allowed.get("tools") if isinstance(allowed, dict) else None
        if mode in ("auto", "required") and isinstance(tools, list):
            names = [
                t["function"]["name"]
                for t in tools
                if isinstance(t, dict)
                and isinstance(t.get("function"), dict)
                and isinstance(t["function"].get("name"), str)
            ]
            if mode == "required":
                return {"mode": "ANY", "allowedFunctionNames": names}, None
            # Gemini restricts names only in ANY mode: for "auto", declare just the allowed ones.
            return {"mode": "AUTO"}, names
    raise InvalidRequestError(
        "'tool_choice' must be 'auto', 'required', 'none', a named function or allowed_tools",
        param="tool_choice",
    )


# ---------------------------------------------------------------------------------------------
# Request: the whole body


def _generation_config(body: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for ours, theirs in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
        ("n", "candidateCount"),
        ("top_k", "topK"),  # not OpenAI; callers used to other Gemini clients send it
    ):
        if body.get(ours) is not None:
            config[theirs] = body[ours]
    limit = max_tokens(body)
    if limit is not None:
        config["maxOutputTokens"] = limit
    stop = stop_sequences(body)
    if stop is not None:
        config["stopSequences"] = stop
    if body.get("logprobs") is True:
        config["responseLogprobs"] = True
        if body.get("top_logprobs") is not None:
            config["logprobs"] = body["top_logprobs"]

    effort = body.get("reasoning_effort")
    if isinstance(effort, str):
        config["thinkingConfig"] = {"thinkingBudget": _THINKING_BUDGETS.get(effort, _THINKING_MAX)}

    response_format = body.get("response_format")
    if isinstance(response_format, dict):
        kind = response_format.get("type")
        if kind == "json_object":
            config["responseMimeType"] = "application/json"
        elif kind == "json_schema":
            schema = json_schema(response_format)
            # responseJsonSchema takes JSON Schema as is: no lossy conversion of the caller's contract.
            config["responseMimeType"] = "application/json"
            config["responseJsonSchema"] = schema
        elif kind not in ("text", None):
            raise invalid_response_format_type()
    return config


def build_generate_body(request: ChatRequest, refuse: Callable[[ChatRequest, str], None]) -> dict[str, Any]:
    """The `GenerateContentRequest` for an OpenAI Chat Completions body; `request.body` is not modified.

    `refuse` is the calling adapter's `Adapter.refuse`, so the 400 names that adapter's provider.
    """
    body = request.body
    for name in requested(body, _UNSUPPORTED):
        refuse(request, name)
    system, contents = translate_messages(body.get("messages"))
    out: dict[str, Any] = {"contents": contents}
    if system is not None:
        out["systemInstruction"] = system

    if body.get("tools") is not None:
        declarations = _function_declarations(body["tools"])
        if body.get("tool_choice") is not None:
            config, keep = _tool_config(body["tool_choice"])
            if keep is not None:
                declarations = [d for d in declarations if d["name"] in keep]
            out["toolConfig"] = {"functionCallingConfig": config}
        if declarations:
            out["tools"] = [{"functionDeclarations": declarations}]
    safety = body.get("safety_settings")  # not OpenAI; Gemini's own safety thresholds, passed through
    if isinstance(safety, list):
        out["safetySettings"] = safety
    generation = _generation_config(body)
    if generation:
        out["generationConfig"] = generation
    return out


# ---------------------------------------------------------------------------------------------
# Reply: GenerateContentResponse -> chat.completion


def _logprobs(result: Any) -> dict[str, Any] | None:
    """`logprobsResult` -> OpenAI `choices[].logprobs` (chosen tokens with their top alternatives)."""
    if not isinstance(result, dict) or not isinstance(result.get("chosenCandidates"), list):
        return None
    tops = result.get("topCandidates")
    content = []
    for i, chosen in enumerate(result["chosenCandidates"]):
        if not isinstance(chosen, dict):
            continue
        raw_token = chosen.get("token")
        token = raw_token if isinstance(raw_token, str) else ""
        entry: dict[str, Any] = {
            "token": token,
            "logprob": chosen.get("logProbability", 0.0),
            "bytes": list(token.encode()),
            "top_logprobs": [],
        }
        top = tops[i] if isinstance(tops, list) and i < len(tops) else None
        candidates = top.get("candidates") if isinstance(top, dict) else None
        for alt in candidates if isinstance(candidates, list) else []:
            if isinstance(alt, dict) and isinstance(alt.get("token"), str):
                entry["top_logprobs"].append(
                    {
                        "token": alt["token"],
                        "logprob": alt.get("logProbability", 0.0),
                        "bytes": list(alt["token"].encode()),
                    }
                )
        content.append(entry)
    return {"content": content, "refusal": None}


def _tool_call(call: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    args = call.get("args")
    out = tool_call(
        call["id"] if isinstance(call.get("id"), str) and call["id"] else mint_call_id(),
        call.get("name"),
        orjson.dumps(args if args is not None else {}).decode(),
    )
    signature = part.get("thoughtSignature")
    if isinstance(signature, str) and signature:
        # Gemini 3 wants the signature back with the call in the next turn; OpenAI has no field for
        # it, so it rides along as Google's own OpenAI-compatible API does, in `extra_content`.
        out["extra_content"] = {"google": {"thought_signature": signature}}
    return out


def _split_parts(content: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """A candidate's parts -> (answer texts, OpenAI tool calls); thought summaries are left out."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    parts = content.get("parts") if isinstance(content, dict) else None
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict) or part.get("thought") is True:
            continue
        text = part.get("text")
        if isinstance(text, str):
            texts.append(text)
        call = part.get("functionCall")
        if isinstance(call, dict):
            calls.append(_tool_call(call, part))
    return texts, calls


def _failed_turn(raw_finish: str, candidate: dict[str, Any]) -> UpstreamStatusError:
    detail = candidate.get("finishMessage")
    message = f"Gemini ended the turn with {raw_finish}" + (f": {detail}" if isinstance(detail, str) else "")
    return UpstreamStatusError(message, upstream_status=500, upstream_type="api_error", code=raw_finish)


def parse_generate_response(payload: Any, model: str) -> ChatResponse:
    """A `GenerateContentResponse` (already parsed) -> the OpenAI `chat.completion` bytes and usage."""
    if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
        raise google_error(payload, _status_of(payload["error"]), {})
    if not isinstance(payload, dict) or not (
        isinstance(payload.get("candidates"), list) or isinstance(payload.get("promptFeedback"), dict)
    ):
        raise UpstreamProtocolError("the provider's reply is not a GenerateContentResponse")
    choices: list[dict[str, Any]] = []
    for position, candidate in enumerate(payload.get("candidates") or []):
        if not isinstance(candidate, dict):
            continue
        raw_finish = candidate.get("finishReason")
        if raw_finish in _FAILED_FINISH:
            raise _failed_turn(raw_finish, candidate)
        texts, calls = _split_parts(candidate.get("content"))
        index = candidate.get("index")
        choices.append(
            choice(
                assistant_message(texts, calls),
                finish_reason(raw_finish, bool(calls)),
                index=index if isinstance(index, int) else position,
                logprobs=_logprobs(candidate.get("logprobsResult")),
            )
        )
    if not choices:
        # A blocked prompt: HTTP 200, no candidates, `promptFeedback.blockReason` (reference §4.3).
        choices.append(choice(assistant_message([], []), "content_filter"))
    choices.sort(key=lambda item: item["index"])
    response_id = payload.get("responseId")
    version = payload.get("modelVersion")
    return chat_response(
        response_id if isinstance(response_id, str) and response_id else "chatcmpl-" + secrets.token_hex(12),
        version if isinstance(version, str) and version else model,
        choices,
        usage_from_metadata(payload.get("usageMetadata")),
    )


# ---------------------------------------------------------------------------------------------
# Stream: GenerateContentResponse events -> OpenAI chunks


class GeminiStream(ChunkStream):
    """A `streamGenerateContent?alt=sse` stream rebuilt as `chat.completion.chunk` frames (reference §4.4).

    Every event is a whole GenerateContentResponse holding only the new parts. Function calls
    arrive whole, so each becomes one complete tool-call delta. There is no end sentinel: the
    stream is complete when every candidate has had its finishReason, and `finish()` (at EOF)
    adds the usage chunk and `[DONE]`, or raises if the body ended before that.
    """

    __slots__ = ("_calls", "_done", "_started")

    def __init__(self, model: str, include_usage: bool) -> None:
        super().__init__(None, model, include_usage)  # the id is the first event's responseId
        self._started: set[int] = set()  # candidates whose role chunk went out
        self._calls: dict[int, int] = {}  # candidate -> tool calls sent (the next call's index)
        self._done: set[int] = set()  # candidates whose finish_reason went out

    def feed(self, event: SSEEvent) -> list[bytes]:
        if self.finished:
            return []
        payload = event_json(event.data)
        if isinstance(payload.get("error"), dict):
            raise google_error(payload, _status_of(payload["error"]), {})
        if self.id is None:
            response_id = payload.get("responseId")
            self.id = (
                response_id
                if isinstance(response_id, str) and response_id
                else ("chatcmpl-" + secrets.token_hex(12))
            )
        version = payload.get("modelVersion")
        if isinstance(version, str) and version:
            self.model = version
        if "usageMetadata" in payload:
            # Intermediate events may carry partial counts: the last one seen is the bill.
            self.usage = usage_from_metadata(payload["usageMetadata"]) or self.usage
        candidates = payload.get("candidates")
        if not isinstance(candidates, list) or not candidates:
            feedback = payload.get("promptFeedback")
            if isinstance(feedback, dict) and feedback.get("blockReason") and 0 not in self._done:
                # A blocked prompt: no candidates at all, only the reason (reference §4.3).
                self._done.add(0)
                return [*self._open(0), self.chunk({}, "content_filter")]
            return []  # a usage-only event
        frames: list[bytes] = []
        for position, candidate in enumerate(candidates):
            if isinstance(candidate, dict):
                frames.extend(self._candidate(position, candidate))
        return frames

    def _open(self, index: int) -> list[bytes]:
        if index in self._started:
            return []
        self._started.add(index)
        return [self.chunk({"role": "assistant", "content": ""}, index=index)]

    def _candidate(self, position: int, candidate: dict[str, Any]) -> list[bytes]:
        raw_index = candidate.get("index")
        index = raw_index if isinstance(raw_index, int) else position
        if index in self._done:
            return []
        raw_finish = candidate.get("finishReason")
        if raw_finish in _FAILED_FINISH:
            raise _failed_turn(raw_finish, candidate)
        frames = self._open(index)
        texts, calls = _split_parts(candidate.get("content"))
        text = "".join(texts)
        logprobs = _logprobs(candidate.get("logprobsResult"))
        if text:
            frames.append(self.chunk({"content": text}, index=index, logprobs=logprobs))
        for call in calls:
            k = self._calls.get(index, 0)
            self._calls[index] = k + 1
            frames.append(self.chunk({"tool_calls": [{"index": k, **call}]}, index=index))
        if isinstance(raw_finish, str) and raw_finish:
            self._done.add(index)
            frames.append(self.chunk({}, finish_reason(raw_finish, index in self._calls), index=index))
        return frames

    def finish(self) -> list[bytes]:
        if self.finished:
            return []
        if not self._done or not self._started <= self._done:
            raise UpstreamProtocolError("the provider ended the stream before it was complete")
        return self.closing()


# ---------------------------------------------------------------------------------------------
# Embeddings


def embedding_texts(request: EmbeddingsRequest) -> list[str]:
    """The inputs as strings: Gemini embeds text, not token ids."""
    texts = []
    for i, item in enumerate(request.inputs):
        if not isinstance(item, str):
            raise InvalidRequestError(
                f"input[{i}]: token-id input is not supported by Gemini embeddings; send text",
                param="input",
            )
        texts.append(item)
    return texts


def estimate_tokens(texts: list[str]) -> int:
    """About four characters a token: what Google documents for its models when no count comes back."""
    return sum(max(1, math.ceil(len(text) / 4)) for text in texts)


def parse_vectors(values: list[Any], expected: int) -> list[list[float]]:
    if len(values) != expected or not all(isinstance(v, list) for v in values):
        raise UpstreamProtocolError(f"the provider returned {len(values)} embeddings for {expected} inputs")
    return values


# ---------------------------------------------------------------------------------------------
# The adapter


class GeminiAdapter(Adapter):
    provider = "gemini"
    capabilities = ALL_CHAT | {EMBEDDINGS}

    def __init__(self, entry: ModelEntry) -> None:
        super().__init__(entry)
        base = (entry.api_base or _DEFAULT_API_BASE).rstrip("/")
        if not base.endswith(("/v1beta", "/v1")):
            base = f"{base}/{_API_VERSION}"
        model = entry.upstream_model
        # Ids may be given bare ("gemini-2.5-flash") or as resource names ("models/...", "tunedModels/...").
        self.model_path = model if "/" in model else f"models/{model}"
        self.model_id = model.rsplit("/", 1)[-1]
        self.url = f"{base}/{self.model_path}:generateContent"
        self.stream_url = f"{base}/{self.model_path}:streamGenerateContent?alt=sse"
        self.embed_url = f"{base}/{self.model_path}:batchEmbedContents"
        headers = {"content-type": "application/json", "accept-encoding": "identity"}
        if entry.api_key:
            headers["x-goog-api-key"] = entry.api_key
        headers.update(entry.headers)
        self.headers = headers

    def build_request(self, request: ChatRequest) -> UpstreamRequest:
        body = build_generate_body(request, self.refuse)
        url = self.stream_url if request.stream else self.url
        return UpstreamRequest("POST", url, self.headers, orjson.dumps(body))

    def parse_response(self, request: ChatRequest, reply: UpstreamReply) -> ChatResponse:
        return parse_generate_response(reply_json(reply), self.model_id)

    def stream_translator(self, request: ChatRequest) -> StreamTranslator:
        return GeminiStream(self.model_id, request.include_usage)

    def map_error(self, reply: UpstreamReply) -> GatewayError:
        return map_reply_error(reply)

    def build_embeddings_request(self, request: EmbeddingsRequest) -> UpstreamRequest:
        entries = []
        for text in embedding_texts(request):
            entry: dict[str, Any] = {"model": self.model_path, "content": {"parts": [{"text": text}]}}
            if request.dimensions is not None:
                entry["outputDimensionality"] = request.dimensions
            entries.append(entry)
        return UpstreamRequest("POST", self.embed_url, self.headers, orjson.dumps({"requests": entries}))

    def parse_embeddings_response(
        self, request: EmbeddingsRequest, reply: UpstreamReply
    ) -> EmbeddingsResponse:
        payload = reply_json(reply)
        embeddings = payload.get("embeddings") if isinstance(payload, dict) else None
        if not isinstance(embeddings, list):
            raise UpstreamProtocolError("the provider's reply is not a batchEmbedContents response")
        values = [e.get("values") if isinstance(e, dict) else None for e in embeddings]
        vectors = parse_vectors(values, len(request.inputs))
        # batchEmbedContents reports no token counts: estimate, so the call is still priced.
        usage = usage_from_metadata(payload.get("usageMetadata"))
        if usage is None:
            usage = Usage(prompt_tokens=estimate_tokens(embedding_texts(request)))
        return EmbeddingsResponse(vectors=vectors, usage=usage)
