"""Cohere v2 chat: OpenAI Chat Completions translated to `POST /v2/chat` (and `/v2/embed`) and back.

Requests are rewritten per reference §6.4: `developer` becomes `system`, assistant text next to
tool calls becomes `tool_plan` (where Cohere writes it), `top_p`/`top_k`/`stop` become `p`/`k`/
`stop_sequences`, `tool_choice` becomes `REQUIRED`/`NONE` (a named function is the only tool,
required), and `response_format` becomes Cohere's `json_object` with an optional `json_schema`.
Replies and stream events (`message-start` ... `message-end`) are rebuilt as OpenAI
`chat.completion` objects and `chat.completion.chunk` frames; `tool_plan` comes back as content.
Usage is read from `billed_units` (what Cohere charges), falling back to `tokens`. OpenAI
parameters Cohere has no equivalent for get a 400 naming them, or are dropped with
`drop_params: true`; keys that change nothing the caller sees (`user`, `store`, ...) are left out.
"""

from __future__ import annotations

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
    invalid_response_format_type,
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
    require_text_inputs,
    response_format_object,
    stop_sequences,
    tool_call,
    tool_call_delta,
    tool_call_id,
    unsupported_role,
)
from .base import ALL_CHAT, EMBEDDINGS, Adapter, StreamTranslator, retry_hint_headers

if TYPE_CHECKING:
    from ..config.schema import ModelEntry
    from ..upstream.sse import SSEEvent

_DEFAULT_API_BASE = "https://api.cohere.com"
_DEFAULT_INPUT_TYPE = "search_document"
# Cohere's `p` must lie in [0.01, 0.99]; OpenAI's `top_p` default of 1 would otherwise be a 400.
_P_MIN, _P_MAX = 0.01, 0.99

# Cohere `finish_reason` -> OpenAI (reference §8). ERROR and TIMEOUT are failures, not stops.
_FINISH_REASONS = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
}
_FAILED = {"ERROR": 500, "TIMEOUT": 504}

# OpenAI parameters with no Cohere equivalent we translate. A neutral value (n: 1, false, 0, {})
# asks for nothing, so it is dropped rather than refused.
_UNSUPPORTED = ("n", "logprobs", "top_logprobs", "logit_bias")
# Cohere-only keys a caller may send through the OpenAI SDK's `extra_body`; forwarded as given.
_NATIVE_KEYS = ("documents", "citation_options", "safety_mode", "thinking", "strict_tools")


def _finish_reason(reason: Any) -> str:
    return _FINISH_REASONS.get(reason, "stop") if isinstance(reason, str) else "stop"


def _count(value: Any) -> int:
    """Cohere's counts are JSON numbers that may be floats (`billed_units`)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(value)


def _usage(raw: Any) -> Usage | None:
    """Cohere usage -> ours: `billed_units` when present (it is what is charged), else `tokens`."""
    if not isinstance(raw, dict):
        return None
    billed, tokens = raw.get("billed_units"), raw.get("tokens")
    source: Any = None
    for candidate in (billed, tokens):
        if isinstance(candidate, dict) and ("input_tokens" in candidate or "output_tokens" in candidate):
            source = candidate
            break
    if source is None:
        return None
    prompt = _count(source.get("input_tokens"))
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=_count(source.get("output_tokens")),
        cached_tokens=min(_count(raw.get("cached_tokens")), prompt),
    )


def _error_from_body(
    body: Any, status: int, headers: Mapping[str, str], fallback: str | None = None
) -> UpstreamStatusError:
    """Cohere's `{"id", "message"}` (or `{"data": ...}` on some 429s) -> UpstreamStatusError.

    The OpenAI error type follows from the status (errors.py), as for every non-OpenAI provider.
    """
    message: str | None = None
    if isinstance(body, dict):
        for key in ("message", "data", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                message = value
                break
    # 498 is Cohere's "invalid token": the OpenAI SDK only knows 401 for that.
    status = 401 if status == 498 else status
    return UpstreamStatusError(
        message or fallback or f"the provider returned HTTP {status}",
        upstream_status=status,
        headers=retry_hint_headers(headers),
    )


def _generation_failed(reason: str, error: Any) -> UpstreamStatusError:
    detail = error if isinstance(error, str) and error else None
    message = f"the provider stopped the generation with finish_reason {reason}"
    return UpstreamStatusError(
        f"{message}: {detail}" if detail else message,
        upstream_status=_FAILED[reason],
        upstream_type="api_error",
    )


# ---------------------------------------------------------------------------------------------
# Request: OpenAI messages -> Cohere v2 messages


def _text_content(content: Any, where: str) -> str | list[dict[str, Any]]:
    """String or text parts (system, assistant, tool content) -> Cohere string or text items."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    items = []
    for at, part in content_parts(content, where):
        text = part_text(part, at)
        if text:
            items.append({"type": "text", "text": text})
    return items


def _plain_text(content: str | list[dict[str, Any]]) -> str:
    return content if isinstance(content, str) else "".join(item["text"] for item in content)


def _image_item(part: dict[str, Any], where: str) -> dict[str, Any]:
    at = f"{where}.image_url.url"
    url, image = image_url(part, at)
    if url.startswith("data:"):
        parse_data_url(url, at)  # checked only: Cohere takes the data URL as it is
    elif not url.startswith(("http://", "https://")):
        raise not_an_image_url(at)
    # Cohere fetches http(s) URLs itself, like OpenAI; the gateway never does.
    out: dict[str, Any] = {"url": url}
    if isinstance(image, dict) and isinstance(image.get("detail"), str):
        out["detail"] = image["detail"]
    return {"type": "image_url", "image_url": out}


def _user_content(content: Any, where: str) -> str | list[dict[str, Any]]:
    if not isinstance(content, list):
        return _text_content(content, where)
    items = []
    for at, part in content_parts(content, where):
        if isinstance(part, dict) and part.get("type") == "image_url":
            items.append(_image_item(part, at))
        else:
            text = part_text(part, at)
            if text:
                items.append({"type": "text", "text": text})
    return items


def _arguments(arguments: Any, where: str) -> str:
    """OpenAI arguments as the JSON string Cohere wants; invalid JSON is a 400 here, not upstream."""
    if isinstance(arguments, dict):
        return orjson.dumps(arguments).decode()
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return "{}"  # models emit "" for functions without parameters
    if not isinstance(arguments, str):
        raise InvalidRequestError(f"{where} must be a JSON string", param=where)
    try:
        orjson.loads(arguments)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"{where} is not valid JSON", param=where) from exc
    return arguments


def _assistant(message: dict[str, Any], where: str) -> dict[str, Any] | None:
    content = _text_content(message.get("content"), where)
    tool_calls = message.get("tool_calls")
    if not tool_calls:
        if not content:
            return None  # an empty assistant turn says nothing; Cohere rejects empty content
        return {"role": "assistant", "content": content}
    calls = []
    for call in iter_tool_calls(tool_calls, where):
        if not isinstance(call.id, str):
            raise InvalidRequestError(f"{call.at}.id is required", param=f"{call.at}.id")
        arguments = _arguments(call.arguments, f"{call.at}.function.arguments")
        calls.append(tool_call(call.id, call.name, arguments))
    out: dict[str, Any] = {"role": "assistant", "tool_calls": calls}
    plan = _plain_text(content)
    if plan:
        # Text beside tool calls is what Cohere itself writes as `tool_plan` in that position.
        out["tool_plan"] = plan
    return out


def _tool(message: dict[str, Any], where: str) -> dict[str, Any]:
    call_id = tool_call_id(message, where)
    return {"role": "tool", "tool_call_id": call_id, "content": _text_content(message.get("content"), where)}


def _translate_messages(messages: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for where, message, role in iter_messages(messages):
        if role in ("system", "developer"):
            out.append({"role": "system", "content": _text_content(message.get("content"), where)})
        elif role == "user":
            out.append({"role": "user", "content": _user_content(message.get("content"), where)})
        elif role == "assistant":
            translated = _assistant(message, where)
            if translated is not None:
                out.append(translated)
        elif role == "tool":
            out.append(_tool(message, where))
        else:
            raise unsupported_role(role, where)
    return out


def _tools(tools: Any) -> tuple[list[dict[str, Any]], bool]:
    """OpenAI tools -> Cohere tools (same shape, without `strict`), and whether any asked for strict."""
    out = []
    strict = False
    for tool in iter_function_tools(tools):
        entry: dict[str, Any] = {"name": tool.name}
        if tool.description is not None:
            entry["description"] = tool.description
        entry["parameters"] = object_schema(tool.parameters)
        strict = strict or tool.strict
        out.append({"type": "function", "function": entry})
    return out, strict


def _response_format(value: Any) -> dict[str, Any] | None:
    kind = response_format_object(value).get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        return {"type": "json_object", "json_schema": json_schema(value)}
    raise invalid_response_format_type()


# ---------------------------------------------------------------------------------------------
# Stream: Cohere v2 events -> OpenAI chunks


def _delta_message(payload: dict[str, Any]) -> dict[str, Any]:
    delta = payload.get("delta")
    message = delta.get("message") if isinstance(delta, dict) else None
    return message if isinstance(message, dict) else {}


class CohereStream(ChunkStream):
    """One v2 chat stream rebuilt as `chat.completion.chunk` frames.

    Cohere numbers tool calls with the event's `index`; OpenAI's index is the call's position in
    `tool_calls`, so calls are renumbered in order of their `tool-call-start`. Thinking content
    is dropped: OpenAI Chat has no standard field for it.
    """

    __slots__ = ("_finish_sent", "_started", "_tool_index")

    def __init__(self, model: str, include_usage: bool) -> None:
        super().__init__("cohere-unknown", model, include_usage)  # the id is replaced by message-start's
        self._tool_index: dict[int, int] = {}
        self._started = False
        self._finish_sent = False

    def _frames(self, delta: dict[str, Any]) -> list[bytes]:
        """Frames for one delta, opened by the role chunk if the provider skipped message-start."""
        if self._started:
            return [self.chunk(delta)]
        self._started = True
        return [self.chunk({"role": "assistant", "content": ""}), self.chunk(delta)]

    def feed(self, event: SSEEvent) -> list[bytes]:
        if self.finished or event.data[:6] == b"[DONE]":  # the SDK tolerates an OpenAI-style sentinel
            return []
        payload = event_json(event.data)
        kind = payload.get("type") or event.event
        if kind in ("content-delta", "content-start"):
            content = _delta_message(payload).get("content")
            text = content.get("text") if isinstance(content, dict) else None
            return self._frames({"content": text}) if isinstance(text, str) and text else []
        if kind == "tool-plan-delta":
            plan = _delta_message(payload).get("tool_plan")
            return self._frames({"content": plan}) if isinstance(plan, str) and plan else []
        if kind == "tool-call-start":
            return self._tool_start(payload)
        if kind == "tool-call-delta":
            k = self._tool_index.get(_count(payload.get("index")))
            call = _delta_message(payload).get("tool_calls")
            function = call.get("function") if isinstance(call, dict) else None
            fragment = function.get("arguments") if isinstance(function, dict) else None
            if k is None or not isinstance(fragment, str) or not fragment:
                return []
            return self._frames({"tool_calls": [arguments_delta(k, fragment)]})
        if kind == "message-start":
            if isinstance(payload.get("id"), str):
                self.id = payload["id"]
            if self._started:
                return []
            self._started = True
            return [self.chunk({"role": "assistant", "content": ""})]
        if kind == "message-end":
            return self._end(payload)
        return []  # content-end, tool-call-end, citation-*, debug, and types added after this was written

    def _tool_start(self, payload: dict[str, Any]) -> list[bytes]:
        call = _delta_message(payload).get("tool_calls")
        if not isinstance(call, dict):
            return []
        k = len(self._tool_index)
        self._tool_index[_count(payload.get("index"))] = k
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        arguments = function.get("arguments")
        item = tool_call_delta(
            k, call.get("id"), function.get("name"), arguments if isinstance(arguments, str) else ""
        )
        return self._frames({"tool_calls": [item]})

    def _end(self, payload: dict[str, Any]) -> list[bytes]:
        delta = payload.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        usage = _usage(delta.get("usage"))
        if usage is not None:
            self.usage = usage
        reason = delta.get("finish_reason")
        if reason in _FAILED or delta.get("error"):
            raise _generation_failed(reason if reason in _FAILED else "ERROR", delta.get("error"))
        frames = [] if self._started else [self.chunk({"role": "assistant", "content": ""})]
        finish = _finish_reason(reason)
        if self._tool_index and finish == "stop":
            finish = "tool_calls"
        frames.append(self.chunk({}, finish))
        return frames + self.closing()


# ---------------------------------------------------------------------------------------------
# The adapter


class CohereAdapter(Adapter):
    provider = "cohere"
    capabilities = ALL_CHAT | {EMBEDDINGS}

    def __init__(self, entry: ModelEntry) -> None:
        super().__init__(entry)
        base = (entry.api_base or _DEFAULT_API_BASE).rstrip("/")
        base = base.removesuffix("/v2")  # accept the API root with or without its version
        self.url = f"{base}/v2/chat"
        self.embed_url = f"{base}/v2/embed"
        headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "accept-encoding": "identity",  # no decompression on the hot path
        }
        if entry.api_key:
            headers["authorization"] = f"Bearer {entry.api_key}"
        headers.update(entry.headers)
        self.headers = headers
        self.model_id = entry.upstream_model

    def build_request(self, request: ChatRequest) -> UpstreamRequest:
        return UpstreamRequest("POST", self.url, self.headers, orjson.dumps(self.translate_body(request)))

    def translate_body(self, request: ChatRequest) -> dict[str, Any]:
        """The Cohere request body for an OpenAI Chat Completions body; `request.body` is not modified."""
        body = request.body
        for name in requested(body, _UNSUPPORTED):
            self.refuse(request, name)
        if body.get("parallel_tool_calls") is False and body.get("tools"):
            self.refuse(request, "parallel_tool_calls")  # Cohere cannot be told to call one tool at most

        out: dict[str, Any] = {"model": self.model_id, "messages": _translate_messages(body.get("messages"))}
        if request.stream:
            out["stream"] = True
        limit = max_tokens(body, self.entry.default_max_tokens)
        if limit is not None:
            out["max_tokens"] = limit
        if body.get("temperature") is not None:
            out["temperature"] = body["temperature"]
        if body.get("top_p") is not None:
            out["p"] = clamp(body["top_p"], _P_MIN, _P_MAX)
        if body.get("top_k") is not None:  # not OpenAI, but sent by callers who know their model
            out["k"] = body["top_k"]
        stop = stop_sequences(body)
        if stop is not None:
            out["stop_sequences"] = stop
        for name in ("seed", "frequency_penalty", "presence_penalty"):
            if body.get(name) is not None:
                out[name] = body[name]

        tools = body.get("tools")
        if tools is not None:
            out["tools"], strict = _tools(tools)
            if strict:
                out["strict_tools"] = True
        choice = body.get("tool_choice")
        if choice is not None:
            self._tool_choice(choice, out)
        response_format = body.get("response_format")
        if response_format is not None:
            translated = _response_format(response_format)
            if translated is not None:
                out["response_format"] = translated
        for name in _NATIVE_KEYS:
            if body.get(name) is not None:
                out[name] = body[name]
        return out

    @staticmethod
    def _tool_choice(choice: Any, out: dict[str, Any]) -> None:
        tools = out.get("tools")
        if choice == "auto":
            return  # Cohere's default: no key
        if choice == "none":
            if tools:
                out["tool_choice"] = "NONE"
            return
        if choice == "required":
            if not tools:
                raise InvalidRequestError("tool_choice 'required' needs 'tools'", param="tool_choice")
            out["tool_choice"] = "REQUIRED"
            return
        name = named_function(choice)
        if name is None:
            raise invalid_tool_choice()
        # Cohere cannot name a tool; offering only that tool and requiring a call is the same.
        chosen = [tool for tool in tools or [] if tool["function"]["name"] == name]
        if not chosen:
            raise InvalidRequestError(
                f"tool_choice names function {name!r}, which is not in 'tools'",
                param="tool_choice.function.name",
            )
        out["tools"] = chosen
        out["tool_choice"] = "REQUIRED"

    def parse_response(self, request: ChatRequest, reply: UpstreamReply) -> ChatResponse:
        body = reply_json(reply)
        if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
            raise UpstreamProtocolError("the provider's reply is not a v2 chat response")
        reason = body.get("finish_reason")
        if reason in _FAILED:
            raise _generation_failed(reason, body.get("error"))
        raw = body["message"]
        texts = [
            item["text"]
            for item in raw.get("content") or []
            if isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str)
        ]
        tool_calls = []
        for call in raw.get("tool_calls") or []:
            if not isinstance(call, dict):
                continue
            function = call.get("function")
            if not isinstance(function, dict):
                function = {}
            arguments = function.get("arguments")
            if not isinstance(arguments, str):
                arguments = orjson.dumps(arguments if arguments is not None else {}).decode()
            tool_calls.append(tool_call(call.get("id"), function.get("name"), arguments))
        plan = raw.get("tool_plan")
        if not texts and tool_calls and isinstance(plan, str) and plan:
            texts = [plan]
        finish = _finish_reason(reason)
        if tool_calls and finish == "stop":
            finish = "tool_calls"
        return chat_response(
            body.get("id") or "cohere-unknown",  # kept as is: it is what Cohere's support knows
            self.model_id,
            [choice(assistant_message(texts, tool_calls), finish)],
            _usage(body.get("usage")),
        )

    def stream_translator(self, request: ChatRequest) -> StreamTranslator:
        return CohereStream(self.model_id, request.include_usage)

    def map_error(self, reply: UpstreamReply) -> GatewayError:
        body = error_json(reply.body)
        # Not a dict: a proxy or load balancer answered instead of the API (HTML, plain text, nothing).
        fallback = None if isinstance(body, dict) else proxy_message(reply.status, reply.body)
        return _error_from_body(body, reply.status, reply.headers, fallback)

    # -- embeddings ------------------------------------------------------------------------------

    def build_embeddings_request(self, request: EmbeddingsRequest) -> UpstreamRequest:
        texts = require_text_inputs(request, self.entry.provider)
        body = request.body
        input_type = body.get("input_type")
        out: dict[str, Any] = {
            "model": self.model_id,
            "texts": texts,
            # Required by every v3+ embed model; a caller may pick another one through `extra_body`.
            "input_type": input_type if isinstance(input_type, str) else _DEFAULT_INPUT_TYPE,
            "embedding_types": ["float"],
        }
        if request.dimensions is not None:
            out["output_dimension"] = request.dimensions
        if body.get("truncate") is not None:
            out["truncate"] = body["truncate"]
        return UpstreamRequest("POST", self.embed_url, self.headers, orjson.dumps(out))

    def parse_embeddings_response(
        self, request: EmbeddingsRequest, reply: UpstreamReply
    ) -> EmbeddingsResponse:
        body = reply_json(reply)
        embeddings = body.get("embeddings") if isinstance(body, dict) else None
        # `embeddings_by_type` (what we ask for) nests floats under "float"; the legacy shape is a list.
        vectors = embeddings.get("float") if isinstance(embeddings, dict) else embeddings
        if not isinstance(vectors, list) or len(vectors) != len(request.inputs):
            raise UpstreamProtocolError("the provider's embed reply does not have one float vector per input")
        meta = body.get("meta")
        billed = meta.get("billed_units") if isinstance(meta, dict) else None
        usage = Usage(prompt_tokens=_count(billed.get("input_tokens"))) if isinstance(billed, dict) else None
        return EmbeddingsResponse(vectors=vectors, usage=usage)
