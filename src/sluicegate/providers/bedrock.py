"""AWS Bedrock Runtime: OpenAI Chat Completions translated to Converse / ConverseStream and back.

Requests are rewritten per reference §5.2 and §5.7: system and developer messages become the
top-level `system` blocks, the rest become alternating user/assistant turns of content blocks
(text, base64 image bytes, `toolUse`, `toolResult`), tools become `toolConfig`, and sampling
parameters go into `inferenceConfig`. Replies and ConverseStream events (AWS event-stream
frames, decoded by upstream/eventstream.py) are rebuilt as OpenAI `chat.completion` objects and
`chat.completion.chunk` frames, with usage normalised so prompt tokens include cache reads and
writes. JSON mode and JSON schemas, which Converse has no portable field for, are served by
forcing one tool whose input schema is the requested schema and returning its input as the
message text.

Every attempt is signed with SigV4 (service `bedrock`) in `sign()`, with a fresh timestamp, or
carries a Bedrock API key as a bearer token. Credentials and region come from the model entry,
else from the standard `AWS_*` environment variables read when the adapter is built.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import yarl

from ..errors import (
    ConfigError,
    GatewayError,
    InvalidRequestError,
    UpstreamProtocolError,
    UpstreamStatusError,
)
from ..types import ChatRequest, ChatResponse, UpstreamReply, UpstreamRequest, Usage
from ..upstream.eventstream import ERROR_PREFIX, EXCEPTION_PREFIX, EventStreamDecoder
from ..upstream.sigv4 import Signer, encode_label, host_header
from ._translate import (
    ChunkStream,
    arguments_delta,
    assistant_message,
    body_snippet,
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
    object_schema,
    parse_data_url,
    part_text,
    reply_json,
    requested,
    stop_sequences,
    tool_arguments,
    tool_call,
    tool_call_delta,
    tool_call_id,
    usage_with_cache,
)
from .base import (
    CHAT,
    JSON_MODE,
    JSON_SCHEMA,
    STREAM,
    TOOLS,
    VISION,
    Adapter,
    StreamDecoder,
    StreamTranslator,
    retry_hint_headers,
)

if TYPE_CHECKING:
    from ..config.schema import ModelEntry
    from ..upstream.sse import SSEEvent

_SERVICE = "bedrock"
_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
# Bedrock's toolUseId pattern (reference §5.2); OpenAI ids from elsewhere may not match it.
_TOOL_ID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_TOOL_ID_BAD_CHARS = re.compile(r"[^a-zA-Z0-9_-]")

# Bedrock `stopReason` -> OpenAI `finish_reason` (reference §8). The two `malformed_*` reasons
# are failures, not endings: see _MALFORMED.
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
_MALFORMED = ("malformed_model_output", "malformed_tool_use")

# AWS error name -> HTTP status (reference §5.4), for exception frames inside a 200 stream, where
# the name is all we get. Names are normalised to the HTTP spelling (`ThrottlingException`).
_ERROR_STATUS = {
    "ValidationException": 400,
    "ServiceQuotaExceededException": 400,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ModelTimeoutException": 408,
    "ThrottlingException": 429,
    "ModelNotReadyException": 429,
    "ModelErrorException": 424,
    "ModelStreamErrorException": 424,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
}

# OpenAI parameters Converse cannot honour. A neutral value (n: 1, false, 0, {}) asks for nothing
# and is dropped rather than refused; `seed` has no neutral value. `parallel_tool_calls: false` is
# refused too: Converse has no switch for it and the model would still call several tools.
_UNSUPPORTED = (
    "n", "logprobs", "top_logprobs", "logit_bias", "frequency_penalty", "presence_penalty", "seed",
    "audio", "modalities", "prediction", "web_search_options", "reasoning_effort", "functions",
    "function_call",
)  # fmt: skip

# Converse body members a caller may send as they are (OpenAI SDK `extra_body`), for Bedrock
# features with no OpenAI spelling: guardrails, model-specific fields such as `top_k`, latency.
_NATIVE_FIELDS = (
    "additionalModelRequestFields",
    "additionalModelResponseFieldPaths",
    "guardrailConfig",
    "performanceConfig",
    "promptVariables",
    "requestMetadata",
)

_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
_CACHE_POINT = {"cachePoint": {"type": "default"}}

# The forced tool that carries JSON-mode / JSON-schema answers (see the module docstring).
_JSON_TOOL = "json_response"
_JSON_TOOL_DESCRIPTION = "Respond with a JSON value that matches this tool's input schema."


def _finish_reason(stop_reason: Any) -> str:
    return _FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def _usage(raw: Any) -> Usage | None:
    """Bedrock usage -> ours; its `inputTokens` excludes cache reads and writes, ours includes them."""
    return usage_with_cache(
        raw,
        input_key="inputTokens",
        output_key="outputTokens",
        cache_read_key="cacheReadInputTokens",
        cache_write_key="cacheWriteInputTokens",
    )


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by lower-case name, whether or not the mapping is case-insensitive."""
    found = headers.get(name)
    if found is not None:
        return found
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _error_name(raw: str | None) -> str | None:
    """`x-amzn-ErrorType` / `__type` / `:exception-type` -> `ThrottlingException`.

    Headers may carry a suffix (`ThrottlingException:http://internal.amazon.com/...`), JSON
    bodies a namespace (`com.amazon.coral#ThrottlingException`), and stream frames start with a
    lower-case letter (`throttlingException`).
    """
    if not raw:
        return None
    name = raw.split(":", 1)[0].rsplit("#", 1)[-1].strip()
    return name[:1].upper() + name[1:] if name else None


def _aws_error(
    name: str | None, message: str | None, status: int, headers: Mapping[str, str]
) -> UpstreamStatusError:
    """An AWS error as ours; `code` is the AWS exception name, the message is kept as sent.

    The OpenAI error type follows from the status (errors.py), as for every non-OpenAI provider.
    """
    # 424 (ModelErrorException, ModelStreamErrorException) means the model failed while answering:
    # a provider-side failure, so the caller sees 502 rather than an unexpected 424.
    reported = 500 if status == 424 else status
    text = message or (f"the provider returned HTTP {status}" + (f" ({name})" if name else ""))
    return UpstreamStatusError(
        text,
        upstream_status=reported,
        code=name,
        headers=retry_hint_headers(headers),
    )


def _body_message(body: Any) -> str | None:
    if isinstance(body, dict):
        for key in ("message", "Message"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
    return None


def _malformed(stop_reason: str) -> UpstreamStatusError:
    return UpstreamStatusError(
        f"the model produced output Bedrock could not use (stopReason {stop_reason})",
        upstream_status=500,
        upstream_type="api_error",
        code=stop_reason,
    )


def tool_use_id(call_id: str) -> str:
    """An OpenAI tool-call id as a valid Bedrock `toolUseId`, the same on both sides of a round trip.

    Ids that already match `[a-zA-Z0-9_-]{1,64}` (OpenAI's `call_...`, Bedrock's own `tooluse_...`)
    are kept; others get their invalid characters replaced and a short digest of the original,
    so two different ids never collapse into one.
    """
    if _TOOL_ID_RE.match(call_id):
        return call_id
    digest = hashlib.sha256(call_id.encode()).hexdigest()[:10]
    return f"{_TOOL_ID_BAD_CHARS.sub('_', call_id)[:53]}_{digest}"


# ---------------------------------------------------------------------------------------------
# Request: OpenAI messages -> Converse system + turns


def _text_blocks_of_part(part: Any, where: str) -> list[dict[str, Any]]:
    """A text (or refusal) part -> a text block, plus a cache point when the part asks for one."""
    text = part_text(part, where)
    blocks: list[dict[str, Any]] = [{"text": text}] if text else []  # Bedrock rejects blank text
    # Anthropic-style `cache_control` marks a prompt-cache breakpoint: Converse's cachePoint block.
    if part.get("cache_control") is not None:
        blocks.append(dict(_CACHE_POINT))
    return blocks


def _text_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    """String or text parts (system, developer, tool and assistant content) -> text blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for at, part in content_parts(content, where):
        blocks.extend(_text_blocks_of_part(part, at))
    return blocks


def _image_block(part: dict[str, Any], where: str) -> dict[str, Any]:
    at = f"{where}.image_url.url"
    url, _ = image_url(part, at)
    if url.startswith(("http://", "https://")):
        # Converse takes image bytes or S3 locations only, and the gateway never fetches user URLs.
        raise InvalidRequestError(
            f"{at}: Bedrock takes images as base64 data URLs only (data:image/png;base64,...); "
            "the gateway does not fetch image URLs",
            param=at,
            code="unsupported_image_url",
        )
    if not url.startswith("data:"):
        raise InvalidRequestError(f"{at} must be a base64 data URL", param=at)
    media_type, data = parse_data_url(url, at)
    media_type = media_type.lower()
    image_format = _IMAGE_FORMATS.get(media_type)
    if image_format is None:
        raise InvalidRequestError(
            f"{at}: image type {media_type!r} is not supported by Bedrock (png, jpeg, gif, webp)",
            param=at,
        )
    # The data URL is already base64, which is how Converse's JSON carries bytes: no re-encoding.
    return {"image": {"format": image_format, "source": {"bytes": data}}}


def _user_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, list):
        blocks: list[dict[str, Any]] = []
        for at, part in content_parts(content, where):
            if isinstance(part, dict) and part.get("type") == "image_url":
                blocks.append(_image_block(part, at))
            else:
                blocks.extend(_text_blocks_of_part(part, at))
        return blocks
    return _text_blocks(content, where)


def _assistant_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    blocks = _text_blocks(message.get("content"), where)
    tool_calls = message.get("tool_calls")
    if tool_calls is None:
        return blocks
    for call in iter_tool_calls(tool_calls, where):
        if not isinstance(call.id, str) or not call.id:
            raise InvalidRequestError(f"{call.at}.id is required", param=f"{call.at}.id")
        tool_use = {
            "toolUseId": tool_use_id(call.id),
            "name": call.name,
            "input": tool_arguments(call.arguments, f"{call.at}.function.arguments"),
        }
        blocks.append({"toolUse": tool_use})
    return blocks


def _tool_result_block(message: dict[str, Any], where: str) -> dict[str, Any]:
    call_id = tool_call_id(message, where, allow_empty=False)
    content = [block for block in _text_blocks(message.get("content"), where) if "text" in block]
    return {"toolResult": {"toolUseId": tool_use_id(call_id), "content": content}}


def _translate_messages(messages: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI messages -> (Converse `system` blocks, alternating `messages`)."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for where, message, role in iter_messages(messages):
        if role in ("system", "developer"):
            system.extend(_text_blocks(message.get("content"), where))
            continue
        if role == "user":
            blocks, turn_role = _user_blocks(message.get("content"), where), "user"
        elif role == "assistant":
            blocks, turn_role = _assistant_blocks(message, where), "assistant"
        elif role == "tool":
            blocks, turn_role = [_tool_result_block(message, where)], "user"
        else:
            raise InvalidRequestError(
                f"{where}.role: role {role!r} is not supported by Bedrock", param=f"{where}.role"
            )
        if not blocks:
            continue  # an empty message: Converse rejects empty content, and it says nothing
        if turns and turns[-1]["role"] == turn_role:
            turns[-1]["content"].extend(blocks)  # Converse requires alternating roles
        else:
            turns.append({"role": turn_role, "content": blocks})
    for turn in turns:
        content = turn["content"]
        if turn["role"] == "user" and any("toolResult" in block for block in content):
            # Claude on Bedrock wants the tool results ahead of anything else in the turn.
            turn["content"] = [b for b in content if "toolResult" in b] + [
                b for b in content if "toolResult" not in b
            ]
    return system, turns


def _tool_specs(tools: Any) -> list[dict[str, Any]]:
    out = []
    for tool in iter_function_tools(tools):
        spec: dict[str, Any] = {"name": tool.name}
        if isinstance(tool.description, str) and tool.description:
            spec["description"] = tool.description
        # Claude requires an explicit object schema.
        spec["inputSchema"] = {"json": object_schema(tool.parameters, typed=True)}
        if tool.strict:
            spec["strict"] = True
        out.append({"toolSpec": spec})
    return out


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    """OpenAI tool_choice -> Converse toolChoice; None for "none" (Converse has no such choice)."""
    if choice == "auto":
        return {"auto": {}}
    if choice == "required":
        return {"any": {}}
    if choice == "none":
        return None
    name = named_function(choice)
    if name is not None:
        return {"tool": {"name": name}}
    raise invalid_tool_choice()


def _history_tools(turns: list[dict[str, Any]]) -> list[str]:
    """Names of the tools called earlier in the conversation, in order of first use."""
    names: dict[str, None] = {}
    for turn in turns:
        for block in turn["content"]:
            tool_use = block.get("toolUse")
            if tool_use is not None:
                names.setdefault(tool_use["name"], None)
    return list(names)


def _has_tool_blocks(turns: list[dict[str, Any]]) -> bool:
    return any("toolUse" in block or "toolResult" in block for turn in turns for block in turn["content"])


def _json_tool(response_format: Any) -> tuple[str, dict[str, Any]] | None:
    """The forced tool (name, input schema) serving `response_format`, or None for plain text."""
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return _JSON_TOOL, {"type": "object"}
    if kind != "json_schema":
        return None
    schema = json_schema(response_format)
    spec = response_format["json_schema"]  # a dict: json_schema() found the schema in it
    name = spec.get("name")
    if not isinstance(name, str) or not _TOOL_ID_RE.match(name):
        name = _JSON_TOOL
    return name, schema


# ---------------------------------------------------------------------------------------------
# Stream: ConverseStream events -> OpenAI chunks


class BedrockStream(ChunkStream):
    """One ConverseStream rebuilt as `chat.completion.chunk` frames (reference §5.5, §5.7).

    `messageStop` carries the finish reason but usage comes after it in `metadata`, so the stream
    is finished (usage chunk, `[DONE]`) at `metadata`; if the body ends right after `messageStop`
    the closing frames are sent from `finish()`. Reasoning blocks are dropped, as in the
    Anthropic adapter: OpenAI Chat has no standard field for them.
    """

    __slots__ = ("_blocks", "_json_tool", "_started", "_stop_seen")

    def __init__(self, model: str, include_usage: bool, json_tool: str | None) -> None:
        # ConverseStream has no message id; one is minted per stream.
        super().__init__(f"chatcmpl-{uuid.uuid4().hex}", model, include_usage)
        self._json_tool = json_tool
        # contentBlockIndex -> OpenAI tool_calls index, or -1 for the JSON-mode tool (its input is text).
        self._blocks: dict[int, int] = {}
        self._started = False
        self._stop_seen = False

    def feed(self, event: SSEEvent) -> list[bytes]:
        name = event.event
        if name.startswith((EXCEPTION_PREFIX, ERROR_PREFIX)):
            raise self._stream_error(name, event.data)
        if self.finished:
            return []
        payload = event_json(event.data)
        if name == "contentBlockDelta":
            return self._block_delta(payload)
        if name == "contentBlockStart":
            return self._block_start(payload)
        if name == "messageStart":
            if self._started:
                return []
            self._started = True
            return [self.chunk({"role": "assistant", "content": ""})]
        if name == "messageStop":
            stop_reason = payload.get("stopReason")
            if stop_reason in _MALFORMED:
                raise _malformed(stop_reason)
            self._stop_seen = True
            finish = _finish_reason(stop_reason)
            if finish == "tool_calls" and self._json_tool is not None and -1 in self._blocks.values():
                finish = "stop"  # the forced JSON tool answered: to the caller that is a text reply
            return [self.chunk({}, finish)]
        if name == "metadata":
            self.usage = _usage(payload.get("usage"))
            if not self._stop_seen:
                return []  # usage before messageStop: keep reading for the stop reason
            return self.closing()
        return []  # contentBlockStop, and event types added after this was written

    def finish(self) -> list[bytes]:
        if self.finished:
            return []
        if self._stop_seen:
            return self.closing()  # the body ended after messageStop without a metadata event
        raise UpstreamProtocolError("the provider ended the stream before it was complete")

    def _block_start(self, payload: dict[str, Any]) -> list[bytes]:
        start = payload.get("start")
        tool_use = start.get("toolUse") if isinstance(start, dict) else None
        if not isinstance(tool_use, dict):
            return []
        index = int_or_zero(payload.get("contentBlockIndex"))
        name = tool_use.get("name")
        if self._json_tool is not None and name == self._json_tool:
            self._blocks[index] = -1
            return []
        k = sum(1 for value in self._blocks.values() if value >= 0)
        self._blocks[index] = k
        return [self.chunk({"tool_calls": [tool_call_delta(k, tool_use.get("toolUseId"), name)]})]

    def _block_delta(self, payload: dict[str, Any]) -> list[bytes]:
        delta = payload.get("delta")
        if not isinstance(delta, dict):
            return []
        text = delta.get("text")
        if isinstance(text, str):
            return [self.chunk({"content": text})] if text else []
        tool_use = delta.get("toolUse")
        if isinstance(tool_use, dict):
            k = self._blocks.get(int_or_zero(payload.get("contentBlockIndex")))
            fragment = tool_use.get("input")
            if k is None or not isinstance(fragment, str) or not fragment:
                return []
            if k < 0:
                return [self.chunk({"content": fragment})]
            return [self.chunk({"tool_calls": [arguments_delta(k, fragment)]})]
        return []  # reasoningContent, citation, image: see the class docstring

    @staticmethod
    def _stream_error(name: str, data: bytes) -> GatewayError:
        """An exception (or error) frame inside a 200 stream -> our error with the matching status."""
        aws_name = _error_name(name.partition(":")[2])
        body = error_json(data)
        message = _body_message(body)
        if message is None and isinstance(body, dict) and isinstance(body.get("originalMessage"), str):
            message = body["originalMessage"]
        status = _ERROR_STATUS.get(aws_name or "", 500)
        return _aws_error(aws_name, message, status, {})


# ---------------------------------------------------------------------------------------------
# Credentials


@dataclass(frozen=True, slots=True)
class _Auth:
    region: str
    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None
    bearer: str | None = None


def _resolve_auth(entry: ModelEntry, path: str) -> _Auth:
    """Region and credentials: the entry's, else the standard AWS environment variables.

    Order: the entry's SigV4 keys, the entry's `api_key` (a Bedrock API key, sent as a bearer
    token), the environment's SigV4 keys, `AWS_BEARER_TOKEN_BEDROCK`. A session token from the
    environment is only used with keys from the environment: it belongs to them.
    """
    env = os.environ
    region = entry.aws_region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if not region:
        raise ConfigError(
            f"{path}.aws_region: required for provider bedrock (or set AWS_REGION or AWS_DEFAULT_REGION)"
        )
    if not _REGION_RE.match(region):
        raise ConfigError(f"{path}.aws_region: {region!r} is not an AWS region name (e.g. us-east-1)")
    key_id, secret = entry.aws_access_key_id, entry.aws_secret_access_key
    if key_id or secret:
        if not key_id:
            raise ConfigError(f"{path}.aws_access_key_id: required when aws_secret_access_key is set")
        if not secret:
            raise ConfigError(f"{path}.aws_secret_access_key: required when aws_access_key_id is set")
        return _Auth(region, key_id, secret, entry.aws_session_token or None)
    if entry.api_key:
        return _Auth(region, bearer=entry.api_key)
    key_id, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if key_id or secret:
        if not key_id:
            raise ConfigError(
                f"{path}.aws_access_key_id: AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not"
            )
        if not secret:
            raise ConfigError(
                f"{path}.aws_secret_access_key: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"
            )
        token = entry.aws_session_token or env.get("AWS_SESSION_TOKEN") or None
        return _Auth(region, key_id, secret, token)
    bearer = env.get("AWS_BEARER_TOKEN_BEDROCK")
    if bearer:
        return _Auth(region, bearer=bearer)
    raise ConfigError(
        f"{path}.aws_access_key_id: AWS credentials are required for provider bedrock: set "
        "aws_access_key_id and aws_secret_access_key (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), "
        "or api_key with a Bedrock API key"
    )


def _wire_url(url: str) -> str:
    """`url` in the form aiohttp (yarl) puts on the wire.

    yarl re-normalises percent-escapes of characters that are legal in a path, so the `%3A` of
    an encoded model id goes out as `:` (while `%2F` stays). SigV4 signs the path as sent, so
    the URL is normalised once here and what is signed is exactly what is sent.
    """
    return str(yarl.URL(url))


# ---------------------------------------------------------------------------------------------
# The adapter


class BedrockAdapter(Adapter):
    provider = "bedrock"
    # Embeddings (Titan/Cohere through InvokeModel) are not served by this adapter.
    capabilities = frozenset({CHAT, STREAM, TOOLS, VISION, JSON_MODE, JSON_SCHEMA})
    needs_signing = True

    def __init__(self, entry: ModelEntry) -> None:
        super().__init__(entry)
        auth = _resolve_auth(entry, "model")
        self.region = auth.region
        self.model_id = entry.upstream_model
        base = (entry.api_base or f"https://bedrock-runtime.{auth.region}.amazonaws.com").rstrip("/")
        # The model id (or ARN, or inference-profile id) is one URI label (reference §5.1).
        label = encode_label(self.model_id)
        self.url = _wire_url(f"{base}/model/{label}/converse")
        self.stream_url = _wire_url(f"{base}/model/{label}/converse-stream")
        headers = {"content-type": "application/json", "accept-encoding": "identity"}
        self.signer: Signer | None = None
        if auth.bearer is not None:
            headers["authorization"] = f"Bearer {auth.bearer}"
        else:
            assert auth.access_key is not None and auth.secret_key is not None
            self.signer = Signer(auth.access_key, auth.secret_key, auth.region, _SERVICE, auth.session_token)
            # Signed, so it must be exactly what the client sends: set it rather than let aiohttp.
            headers["host"] = host_header(self.url)
        headers.update(entry.headers)
        self.headers = headers

    @staticmethod
    def check(entry: ModelEntry, path: str) -> None:
        """Config validation: a region and credentials must be found (entry or environment)."""
        _resolve_auth(entry, path)

    def stream_decoder(self) -> StreamDecoder:
        return EventStreamDecoder()

    async def sign(self, request: UpstreamRequest, transport: Any) -> UpstreamRequest:
        """SigV4 over the final bytes of this attempt, with this attempt's timestamp."""
        if self.signer is None:
            return request  # bearer API key: already in the headers
        headers = self.signer.sign(request.method, request.url, request.headers, request.body)
        return UpstreamRequest(request.method, request.url, headers, request.body)

    def build_request(self, request: ChatRequest) -> UpstreamRequest:
        url = self.stream_url if request.stream else self.url
        return UpstreamRequest("POST", url, self.headers, orjson.dumps(self.translate_body(request)))

    def _json_tool_name(self, request: ChatRequest) -> str | None:
        """The forced JSON tool's name when this request is served that way (see translate_body)."""
        body = request.body
        if body.get("tools"):
            return None
        found = _json_tool(body.get("response_format"))
        return found[0] if found is not None else None

    def translate_body(self, request: ChatRequest) -> dict[str, Any]:
        """The Converse request body for an OpenAI Chat Completions body; `request.body` is not modified."""
        body = request.body
        for name in requested(body, _UNSUPPORTED):
            self.refuse(request, name)
        if body.get("parallel_tool_calls") is False and body.get("tools"):
            self.refuse(request, "parallel_tool_calls")

        system, messages = _translate_messages(body.get("messages"))
        out: dict[str, Any] = {"messages": messages}
        if system:
            out["system"] = system

        inference: dict[str, Any] = {}
        limit = max_tokens(body, self.entry.default_max_tokens)  # else the model's own default applies
        if limit is not None:
            inference["maxTokens"] = limit
        if body.get("temperature") is not None:
            # OpenAI's range is 0-2, Converse's 0-1: clamp rather than scale, so 0.7 means the same.
            inference["temperature"] = clamp(body["temperature"], 0, 1)
        if body.get("top_p") is not None:
            inference["topP"] = body["top_p"]
        stop = stop_sequences(body)
        if stop is not None:
            inference["stopSequences"] = stop
        if inference:
            out["inferenceConfig"] = inference

        tool_config = self._tool_config(request, messages)
        if tool_config is not None:
            out["toolConfig"] = tool_config
        for name in _NATIVE_FIELDS:
            if body.get(name) is not None:
                out[name] = body[name]
        return out

    def _tool_config(self, request: ChatRequest, messages: list[dict[str, Any]]) -> dict[str, Any] | None:
        body = request.body
        tools = _tool_specs(body["tools"]) if body.get("tools") is not None else []
        choice = _tool_choice(body["tool_choice"]) if body.get("tool_choice") is not None else None
        json_tool = _json_tool(body.get("response_format"))
        if json_tool is not None and tools:
            self.refuse(request, "response_format")  # cannot force the JSON tool and offer others
            json_tool = None
        if json_tool is not None:
            name, schema = json_tool
            spec = {"name": name, "description": _JSON_TOOL_DESCRIPTION, "inputSchema": {"json": schema}}
            tools = [{"toolSpec": spec}]
            choice = {"tool": {"name": name}}
        elif body.get("tool_choice") == "none" and not _has_tool_blocks(messages):
            return None  # "none" has no Converse spelling: offering no tools is the same thing
        if not tools and _has_tool_blocks(messages):
            # Converse rejects toolUse/toolResult history without a toolConfig: declare the tools
            # the history used, with an open schema, so an earlier tool conversation can go on.
            tools = [
                {"toolSpec": {"name": name, "inputSchema": {"json": {"type": "object"}}}}
                for name in _history_tools(messages)
            ]
        if not tools:
            return None
        config: dict[str, Any] = {"tools": tools}
        if choice is not None:
            config["toolChoice"] = choice
        return config

    def parse_response(self, request: ChatRequest, reply: UpstreamReply) -> ChatResponse:
        body = reply_json(reply)
        output = body.get("output") if isinstance(body, dict) else None
        message = output.get("message") if isinstance(output, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            raise UpstreamProtocolError("the provider's reply is not a Converse response")
        stop_reason = body.get("stopReason")
        if stop_reason in _MALFORMED:
            raise _malformed(stop_reason)
        json_tool = self._json_tool_name(request)

        texts: list[str] = []
        tool_calls: list[dict[str, Any]] = []
        for block in content:
            if not isinstance(block, dict):
                continue
            text = block.get("text")
            if isinstance(text, str):
                texts.append(text)
                continue
            tool_use = block.get("toolUse")
            if isinstance(tool_use, dict):
                arguments = orjson.dumps(tool_use.get("input") or {}).decode()
                if json_tool is not None and tool_use.get("name") == json_tool:
                    texts.append(arguments)
                    continue
                tool_calls.append(tool_call(tool_use.get("toolUseId"), tool_use.get("name"), arguments))
            # reasoningContent, citationsContent, ...: no OpenAI field (see BedrockStream).
        finish = _finish_reason(stop_reason)
        if finish == "tool_calls" and not tool_calls:
            finish = "stop"  # the forced JSON tool answered
        request_id = _header(reply.headers, "x-amzn-requestid")
        return chat_response(
            # Bedrock replies carry no id; its request id is what AWS logs and support know.
            f"chatcmpl-{request_id or uuid.uuid4().hex}",
            self.model_id,
            [choice(assistant_message(texts, tool_calls), finish)],
            _usage(body.get("usage")),
        )

    def stream_translator(self, request: ChatRequest) -> StreamTranslator:
        return BedrockStream(self.model_id, request.include_usage, self._json_tool_name(request))

    def map_error(self, reply: UpstreamReply) -> GatewayError:
        body = error_json(reply.body)
        name = _error_name(_header(reply.headers, "x-amzn-errortype"))
        if name is None and isinstance(body, dict):
            raw = body.get("__type") or body.get("code")
            name = _error_name(raw) if isinstance(raw, str) else None
        message = _body_message(body)
        if message is None and not isinstance(body, dict):
            # A proxy or load balancer answered instead of the API (HTML, plain text, nothing).
            text = body_snippet(reply.body)
            if text:
                message = f"the provider returned HTTP {reply.status}: {text}"
        return _aws_error(name, message, reply.status, reply.headers)
