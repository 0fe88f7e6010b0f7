"""Mistral La Plateforme: OpenAI Chat Completions adjusted to Mistral's stricter dialect (reference §6).

Mistral's API has OpenAI's shape but validates strictly: unknown keys, anywhere in the body, are
a 422 `extra_forbidden`. So the request is rebuilt rather than forwarded: `seed` becomes
`random_seed`, `max_completion_tokens` becomes `max_tokens`, `tool_choice: "required"` becomes
`"any"`, `developer` messages become `system`, message keys Mistral does not know (`name`,
`refusal`, `annotations`, ... that SDKs echo back) are left out, and tool-call ids that are not
exactly 9 alphanumerics — OpenAI's `call_...`, Anthropic's `toolu_...` — are rewritten to a
deterministic 9-character id, the same one in the assistant's `tool_calls` and the matching
`tool` message. OpenAI parameters Mistral has no equivalent for get a 400 naming them (or are
dropped with `drop_params: true`); bookkeeping ones that change nothing the caller sees
(`user`, `store`, `stream_options`, ...) are dropped silently. Keys OpenAI does not define
(`safe_prompt`, `prompt_mode`, `prediction`, ...) are Mistral's own and go through untouched.

Replies come back OpenAI-shaped with three repairs: `finish_reason: "model_length"` becomes
`length` (and `"error"` becomes an error), tool calls get the `type: "function"` Mistral omits,
and content given as a list of chunks (reasoning models) becomes plain text. Streams report
usage on the last chunk with choices, unasked; it is moved to OpenAI's separate `choices: []`
chunk when the caller asked for `include_usage`, and removed otherwise. Errors come as
`{"object":"error","message",...}` (with `message` a string or pydantic's `{"detail":[...]}`)
or as a bare `{"message": ...}` from Mistral's API gateway; both keep Mistral's message.

Embeddings use the OpenAI-family base with `dimensions` sent as `output_dimension`; there is no
legacy `/completions` endpoint, so `/v1/completions` is served through chat by the pipeline.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import string
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import GatewayError, InvalidRequestError, UpstreamProtocolError, UpstreamStatusError
from ..types import ChatRequest, ChatResponse, EmbeddingsRequest, UpstreamReply, UpstreamRequest, Usage
from ._openai_compat import OpenAICompatibleBase, error_from_body
from ._translate import error_json, event_json, reply_json
from .base import DONE_FRAME, StreamTranslator, retry_hint_headers, sse_frame

if TYPE_CHECKING:
    from ..upstream.sse import SSEEvent

_DEFAULT_API_BASE = "https://api.mistral.ai/v1"

# Mistral's tool-call id rule (reference §6): exactly 9 ASCII letters or digits.
_VALID_ID = re.compile(r"[A-Za-z0-9]{9}")
_BASE62 = string.digits + string.ascii_letters
_ID_SPACE = 62**9

# Mistral `finish_reason` values OpenAI does not have (reference §8); `error` is raised instead.
_FINISH_REASONS = {"model_length": "length"}

# OpenAI parameters with no Mistral equivalent: a 400 naming them unless the value asks for nothing.
_REFUSED = frozenset(
    {
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "audio",
        "modalities",
        "web_search_options",
        "functions",
        "function_call",
        "verbosity",
    }
)
# OpenAI bookkeeping that changes nothing in the reply; Mistral would 422 on it, so it is left out.
# (`stream_options`: Mistral always reports stream usage, see MistralStream.)
_DROPPED = frozenset(
    {
        "user",
        "safety_identifier",
        "store",
        "metadata",
        "service_tier",
        "stream_options",
        "prompt_cache_retention",
    }
)
# Embeddings keys that do not go to Mistral as they are: `dimensions` is renamed `output_dimension`,
# `user` has no equivalent, and `encoding_format` is left out so the vectors always come back as
# floats — whether Mistral's base64 packs float32 like OpenAI's is not documented.
_EMBEDDING_DROPPED = frozenset({"dimensions", "user", "encoding_format"})
# The message keys Mistral accepts per role (mistralai client models); others are a 422 there.
_MESSAGE_KEYS: dict[str, frozenset[str]] = {
    "system": frozenset({"role", "content"}),
    "user": frozenset({"role", "content"}),
    "assistant": frozenset({"role", "content", "tool_calls", "prefix"}),
    "tool": frozenset({"role", "content", "tool_call_id", "name"}),
}


def _neutral(name: str, value: Any) -> bool:
    """Whether a refused parameter's value asks for nothing (false, 0, {}, text-only), so it can go."""
    if value is None or value is False or value == 0 or value == {} or value == []:
        return True
    return name == "modalities" and value == ["text"]


def _hashed_id(raw: str, salt: int) -> str:
    source = raw if salt == 0 else f"{salt}:{raw}"
    number = int.from_bytes(hashlib.blake2b(source.encode(), digest_size=8).digest(), "big") % _ID_SPACE
    chars = []
    for _ in range(9):
        number, digit = divmod(number, 62)
        chars.append(_BASE62[digit])
    return "".join(chars)


class ToolCallIds:
    """Rewrites tool-call ids Mistral would refuse to 9-character ones, consistently within a request.

    The rewrite is a hash of the original id, so a conversation re-sent turn after turn maps each
    id the same way every time; ids that already follow the rule (Mistral's own) are kept, and a
    rewritten id never lands on one of them.
    """

    __slots__ = ("_mapped", "_taken")

    def __init__(self, kept: set[str]) -> None:
        self._taken = kept
        self._mapped: dict[str, str] = {}

    def __call__(self, raw: Any) -> Any:
        if not isinstance(raw, str) or _VALID_ID.fullmatch(raw):
            return raw  # valid already, or not a string: Mistral's own validation will say
        found = self._mapped.get(raw)
        if found is not None:
            return found
        salt = 0
        candidate = _hashed_id(raw, salt)
        while candidate in self._taken:
            salt += 1
            candidate = _hashed_id(raw, salt)
        self._taken.add(candidate)
        self._mapped[raw] = candidate
        return candidate


def _kept_ids(messages: list[Any]) -> set[str]:
    """Ids in the request that already satisfy Mistral, so that no rewritten id collides with one."""
    kept = set()
    for message in messages:
        if not isinstance(message, dict):
            continue
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                call_id = call.get("id") if isinstance(call, dict) else None
                if isinstance(call_id, str) and _VALID_ID.fullmatch(call_id):
                    kept.add(call_id)
        call_id = message.get("tool_call_id")
        if isinstance(call_id, str) and _VALID_ID.fullmatch(call_id):
            kept.add(call_id)
    return kept


def _needs_ids(messages: list[Any]) -> bool:
    for message in messages:
        if not isinstance(message, dict):
            continue
        call_id = message.get("tool_call_id")
        if isinstance(call_id, str) and not _VALID_ID.fullmatch(call_id):
            return True
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                call_id = call.get("id") if isinstance(call, dict) else None
                if isinstance(call_id, str) and not _VALID_ID.fullmatch(call_id):
                    return True
    return False


def translate_messages(messages: Any) -> Any:
    """OpenAI `messages` -> Mistral's; untouched messages are shared, changed ones copied."""
    if not isinstance(messages, list):
        return messages  # the pipeline validated it; anything else is for Mistral to refuse
    ids = ToolCallIds(_kept_ids(messages)) if _needs_ids(messages) else None
    out: list[Any] = []
    for message in messages:
        if not isinstance(message, dict):
            out.append(message)
            continue
        role = message.get("role")
        if role == "developer":
            role = "system"
        allowed = _MESSAGE_KEYS.get(role) if isinstance(role, str) else None
        if allowed is None:
            out.append(message)  # a role Mistral does not have: its 422 names it
            continue
        if role == message["role"] and message.keys() <= allowed and ids is None:
            out.append(message)
            continue
        copy = {key: value for key, value in message.items() if key in allowed}
        copy["role"] = role
        if ids is not None:
            if role == "tool" and "tool_call_id" in copy:
                copy["tool_call_id"] = ids(copy["tool_call_id"])
            calls = copy.get("tool_calls")
            if role == "assistant" and isinstance(calls, list):
                copy["tool_calls"] = [
                    {**call, "id": ids(call["id"])} if isinstance(call, dict) and "id" in call else call
                    for call in calls
                ]
        out.append(copy)
    return out


def _text_of(content: list[Any]) -> str:
    """Mistral content chunks -> text; `thinking` chunks have no OpenAI Chat field and are left out."""
    return "".join(
        part["text"]
        for part in content
        if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
    )


def _repair_choice(choice: dict[str, Any], key: str) -> bool:
    """One reply choice (`key` "message") or stream choice ("delta") in OpenAI's terms; True if changed.

    `model_length` becomes `length`, `error` is raised, and list content becomes plain text.
    """
    changed = False
    reason = choice.get("finish_reason")
    if reason == "error":
        raise _generation_error(reason)
    if reason in _FINISH_REASONS:
        choice["finish_reason"] = _FINISH_REASONS[reason]
        changed = True
    part = choice.get(key)
    if isinstance(part, dict) and isinstance(part.get("content"), list):
        part["content"] = _text_of(part["content"])
        changed = True
    return changed


def _repair_calls(calls: Any) -> bool:
    """Add the `type: "function"` Mistral omits from the tool calls of a reply."""
    changed = False
    if isinstance(calls, list):
        for call in calls:
            if isinstance(call, dict) and "type" not in call:
                call["type"] = "function"
                changed = True
    return changed


class _ToolIndexes:
    """Per stream: every tool call that starts gets its own `index`, as OpenAI clients assume.

    Mistral sends each call whole in one delta, and its `index` defaults to 0; two calls starting
    on the same index would be merged into one by any client that accumulates deltas by index.
    A call that starts on a taken index moves to the next free one, and later fragments of that
    call (no id, same upstream index) follow it.
    """

    __slots__ = ("_current", "_taken")

    def __init__(self) -> None:
        self._taken: set[int] = set()
        self._current: dict[Any, int] = {}  # upstream index -> the index the client sees

    def repair(self, calls: Any) -> bool:
        changed = False
        if not isinstance(calls, list):
            return False
        for call in calls:
            if not isinstance(call, dict):
                continue
            upstream = call.get("index")
            if call.get("id") is not None:  # a call starts
                if "type" not in call:
                    call["type"] = "function"
                    changed = True
                index = upstream if isinstance(upstream, int) and upstream not in self._taken else 0
                while index in self._taken:
                    index += 1
                self._taken.add(index)
                self._current[upstream] = index
            else:
                index = self._current.get(upstream, upstream if isinstance(upstream, int) else 0)
            if index != upstream:
                call["index"] = index
                changed = True
        return changed


def _generation_error(reason: str) -> UpstreamStatusError:
    return UpstreamStatusError(
        f"the provider stopped generating with finish_reason '{reason}'",
        upstream_status=500,
        code="generation_error",
    )


def _loc(loc: Any) -> str:
    """Pydantic's `["body","messages",0,"user","name"]` -> `messages[0].user.name`."""
    if not isinstance(loc, list):
        return ""
    parts = loc[1:] if loc and loc[0] == "body" else loc
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _describe(detail: list[Any]) -> tuple[str | None, str | None]:
    """Pydantic validation `detail` items -> one readable message and the first bad parameter."""
    messages = []
    first: str | None = None
    for item in detail:
        if not isinstance(item, dict):
            continue
        where = _loc(item.get("loc"))
        first = first or where or None
        msg = item.get("msg")
        if not isinstance(msg, str):
            msg = "invalid"
        messages.append(f"{where}: {msg}" if where else msg)
    return ("; ".join(messages) or None), first


def mistral_error(body: Any, status: int, headers: Mapping[str, str]) -> UpstreamStatusError:
    """Mistral's error bodies (`{"object":"error",...}`, `{"message":...}`, `{"detail":...}`) -> ours."""
    if not isinstance(body, dict) or "error" in body:
        return error_from_body(body, status, headers)  # OpenAI-shaped: a proxy in front of Mistral
    raw = body.get("message")
    detail: Any = body.get("detail")
    message: str | None = None
    param: str | None = None
    if isinstance(raw, str) and raw.startswith('{"detail"'):
        with contextlib.suppress(orjson.JSONDecodeError):
            raw = orjson.loads(raw)  # older API versions sent the validation detail JSON-encoded
    if isinstance(raw, str) and raw:
        message = raw
    elif isinstance(raw, dict):
        detail = raw.get("detail", detail)
    elif isinstance(raw, list):
        detail = raw
    if message is None and isinstance(detail, list):
        message, param = _describe(detail)
    elif message is None and isinstance(detail, str):
        message = detail
    err_type = body.get("type")
    code = body.get("code")
    return UpstreamStatusError(
        message or f"the provider returned HTTP {status}",
        upstream_status=status,
        upstream_type=err_type if isinstance(err_type, str) else None,
        param=param,
        code=str(code) if code is not None else None,
        headers=retry_hint_headers(headers),
    )


class MistralStream(StreamTranslator):
    """Mistral's OpenAI-shaped stream, repaired chunk by chunk; unchanged chunks go out byte for byte."""

    __slots__ = ("_envelope", "_tool_indexes", "include_usage", "raw_usage")

    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.usage: Usage | None = None
        self.finished = False
        self.raw_usage: Any = None
        self._envelope: dict[str, Any] = {}
        self._tool_indexes = _ToolIndexes()

    def feed(self, event: SSEEvent) -> list[bytes]:
        data = event.data
        if data[:6] == b"[DONE]":
            self.finished = True
            if self.include_usage and self.raw_usage is not None:
                chunk = {**self._envelope, "object": "chat.completion.chunk", "choices": []}
                chunk["usage"] = self.raw_usage
                return [sse_frame(orjson.dumps(chunk)), DONE_FRAME]
            return [DONE_FRAME]
        chunk = event_json(data)
        if chunk.get("object") == "error" or chunk.get("error"):
            raise mistral_error(chunk, 500, {})
        if not self._envelope:
            self._envelope = {k: chunk[k] for k in ("id", "created", "model") if k in chunk}
        changed = False
        usage = chunk.get("usage")
        if usage:
            self.raw_usage = usage
            self.usage = Usage.from_openai(usage)
            # Re-sent in OpenAI's own place (a `choices: []` chunk before [DONE]) if the caller asked.
            del chunk["usage"]
            changed = True
        choices = chunk.get("choices")
        if not choices:
            return []  # usage only (kept above) or nothing a client can use
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            changed = _repair_choice(choice, "delta") or changed
            delta = choice.get("delta")
            if isinstance(delta, dict) and "tool_calls" in delta:
                changed = self._tool_indexes.repair(delta["tool_calls"]) or changed
        return [sse_frame(orjson.dumps(chunk) if changed else data)]


class MistralAdapter(OpenAICompatibleBase):
    provider = "mistral"
    default_api_base = _DEFAULT_API_BASE
    # Mistral reports stream usage unasked and rejects `stream_options`.
    supports_stream_usage = False
    # No legacy `/completions` (only FIM): the pipeline serves `/v1/completions` through chat.
    legacy_completions = False

    def prepare_body(self, request: ChatRequest) -> dict[str, Any]:
        """The Mistral request body for an OpenAI Chat Completions body; `request.body` is not modified."""
        out: dict[str, Any] = {}
        for key, value in request.body.items():
            if key in _DROPPED:
                continue
            if key in _REFUSED:
                if not _neutral(key, value):
                    self.refuse(request, key)
                continue
            out[key] = value
        out["model"] = self.model_id
        body = request.body
        if "messages" in body:
            out["messages"] = translate_messages(body["messages"])
        if "max_completion_tokens" in out:
            # OpenAI's newer name wins over the deprecated one when both are given, as at OpenAI.
            out["max_tokens"] = out.pop("max_completion_tokens")
        if "seed" in out:
            seed = out.pop("seed")
            out.setdefault("random_seed", seed)
        if body.get("tool_choice") == "required":
            out["tool_choice"] = "any"
        return out

    def build_request(self, request: ChatRequest) -> UpstreamRequest:
        return UpstreamRequest("POST", self.url, self.headers, orjson.dumps(self.prepare_body(request)))

    def build_embeddings_request(self, request: EmbeddingsRequest) -> UpstreamRequest:
        """`/embeddings` in Mistral's names; floats are always asked for (the pipeline encodes base64)."""
        if not all(isinstance(item, str) for item in request.inputs):
            raise InvalidRequestError(
                f"model '{request.model}' (provider mistral) embeds text only; 'input' must be a string "
                "or an array of strings, not token ids",
                param="input",
                code="invalid_value",
            )
        body = {key: value for key, value in request.body.items() if key not in _EMBEDDING_DROPPED}
        if request.dimensions is not None:
            body["output_dimension"] = request.dimensions
        body["model"] = self.model_id
        return UpstreamRequest("POST", self.embeddings_url, self.headers, orjson.dumps(body))

    def parse_response(self, request: ChatRequest, reply: UpstreamReply) -> ChatResponse:
        body = reply_json(reply)
        if not isinstance(body, dict) or not isinstance(body.get("choices"), list):
            if isinstance(body, dict) and (body.get("object") == "error" or body.get("error")):
                raise mistral_error(body, 500, reply.headers)
            raise UpstreamProtocolError("the provider's reply is not a chat completion")
        changed = False
        for choice in body["choices"]:
            if not isinstance(choice, dict):
                continue
            changed = _repair_choice(choice, "message") or changed
            message = choice.get("message")
            if isinstance(message, dict):
                changed = _repair_calls(message.get("tool_calls")) or changed
        finish = None
        if body["choices"] and isinstance(body["choices"][0], dict):
            finish = body["choices"][0].get("finish_reason")
        content = orjson.dumps(body) if changed else reply.body
        return ChatResponse(content=content, usage=Usage.from_openai(body.get("usage")), finish_reason=finish)

    def stream_translator(self, request: ChatRequest) -> StreamTranslator:
        return MistralStream(request.include_usage)

    def map_error(self, reply: UpstreamReply) -> GatewayError:
        body = error_json(reply.body)
        if body is None:
            text = reply.body[:500].decode("utf-8", "replace").strip()
            body = {"message": text} if text else {}
        return mistral_error(body, reply.status, reply.headers)
