"""A fake Anthropic Messages API server speaking the exact wire format of reference §3.

Serves ``POST /v1/messages`` (JSON, and SSE with ``event:`` + ``data:`` lines: ``message_start``,
``ping``, per-block ``content_block_start``/``_delta``/``_stop``, ``message_delta``,
``message_stop``), ``POST /v1/messages/count_tokens`` and ``GET /v1/models``. Requests are
validated the way the real API rejects what an OpenAI-to-Anthropic translator typically gets
wrong: missing ``max_tokens``, a ``system`` role inside ``messages``, non-alternating roles,
unanswered ``tool_use`` blocks, misplaced ``tool_result`` blocks, non-object tool schemas,
OpenAI-only fields, injected nulls. Errors use Anthropic's
``{"type": "error", "error": {...}, "request_id": ...}`` body.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .behaviours import Behaviour, Outcome, estimate_tokens, split_fragments, split_text, text_of
from .server import ApiError, FakeProviderServer

_BASE62 = string.ascii_letters + string.digits

# Top-level request keys the API accepts; any other key is "Extra inputs are not permitted",
# which catches OpenAI fields (n, stream_options, frequency_penalty...) leaking through a translator.
_KNOWN_PARAMS = frozenset(
    {
        "model", "max_tokens", "messages", "system", "stop_sequences", "temperature", "top_p", "top_k",
        "stream", "tools", "tool_choice", "thinking", "metadata", "service_tier", "output_config",
        "output_format", "cache_control", "container", "inference_geo", "diagnostics", "speed",
        "mcp_servers", "context_management",
    }
)  # fmt: skip
_BLOCK_TYPES = (
    "text", "image", "document", "search_result", "thinking", "redacted_thinking", "tool_use", "tool_result",
    "server_tool_use", "web_search_tool_result", "web_fetch_tool_result", "code_execution_tool_result",
    "bash_code_execution_tool_result", "text_editor_code_execution_tool_result", "tool_search_tool_result",
    "container_upload",
)  # fmt: skip
_IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_TOOL_CHOICE_TYPES = ("auto", "any", "tool", "none")
_EMPTY_CONTENT = "all messages must have non-empty content except for the optional final assistant message"

# What the API says a null top-level value should have been (it has no "may not be null" message).
_EXPECTED_KIND = {
    "model": "string",
    "max_tokens": "integer",
    "messages": "list",
    "system": "string",
    "stop_sequences": "list",
    "temperature": "number",
    "top_p": "number",
    "top_k": "integer",
    "stream": "boolean",
    "tools": "list",
    "service_tier": "string",
}

# §3.4: error.type and a realistic message per HTTP status.
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    409: ("conflict_error", "The request conflicts with another request."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: (
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per minute. "
        "Please try again later.",
    ),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}


def _invalid(message: str, status: int = 400) -> ApiError:
    """An ApiError whose body is completed with the request id by the caller."""
    error_type = _ERRORS.get(status, ("invalid_request_error", ""))[0]
    return ApiError(status, {"type": "error", "error": {"type": error_type, "message": message}})


def _tag_mismatch(where: str, tag: Any, expected: tuple[str, ...]) -> ApiError:
    tags = ", ".join(f"'{name}'" for name in expected)
    return _invalid(
        f"{where}: Input tag '{tag}' found using 'type' does not match any of the expected tags: {tags}"
    )


def _random_id(prefix: str, length: int = 22) -> str:
    return prefix + "".join(secrets.choice(_BASE62) for _ in range(length))


def _sse(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n".encode()


class FakeAnthropic(FakeProviderServer):
    """Fake ``https://api.anthropic.com``; ``base_url`` has no path, like the SDK's."""

    base_path = ""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        default: Behaviour | None = None,
        models: tuple[str, ...] = ("claude-fake-4", "claude-fake-4-mini"),
    ) -> None:
        super().__init__(api_key=api_key, default=default)
        self.models = models

    # ---------------------------------------------------------------------------- routes

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/messages", self._messages),
            web.post("/v1/messages/count_tokens", self._count_tokens),
            web.get("/v1/models", self._list_models),
            web.route("*", "/{tail:.*}", self._not_found),
        ]

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        _, body = await self.record(request)
        request_id = self.new_request_id()
        try:
            self._authenticate(request)
            self._validate(body)
        except ApiError as error:
            return self._error_response(error, request_id)
        return await self.serve_chat(request, body, request_id)

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        """`{"input_tokens": N}` with N = the deterministic prompt estimate; no max_tokens needed."""
        _, body = await self.record(request)
        request_id = self.new_request_id()
        try:
            self._authenticate(request)
            if not isinstance(body, dict) or not isinstance(body.get("model"), str):
                raise _invalid("model: Field required")
            for key in ("max_tokens", "stream", "temperature", "stop_sequences", "metadata"):
                if key in body:
                    raise _invalid(f"{key}: Extra inputs are not permitted")
            self._validate_messages(body.get("messages"))
            self._validate_system(body.get("system"))
        except ApiError as error:
            return self._error_response(error, request_id)
        return self.json_response({"input_tokens": self.prompt_words(body)}, request_id=request_id)

    async def _list_models(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        request_id = self.new_request_id()
        try:
            self._authenticate(request)
        except ApiError as error:
            return self._error_response(error, request_id)
        data = [
            {"type": "model", "id": model, "display_name": model, "created_at": "2025-05-14T00:00:00Z"}
            for model in self.models
        ]
        return self.json_response(
            {"data": data, "has_more": False, "first_id": self.models[0], "last_id": self.models[-1]},
            request_id=request_id,
        )

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        return self._error_response(_invalid("Not Found", 404), self.new_request_id())

    def _error_response(self, error: ApiError, request_id: str) -> web.Response:
        error.body["request_id"] = request_id
        return self.api_error_response(error, request_id)

    # ------------------------------------------------------------------- auth and validation

    def _authenticate(self, request: web.Request) -> None:
        # The API takes the key as x-api-key or as a bearer token (what anthropic SDK 2.x sends);
        # recorded headers tell a test which one the gateway used.
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        key = request.headers.get("x-api-key", "").strip() or (
            bearer.strip() if scheme.lower() == "bearer" else ""
        )
        if not key:
            raise _invalid("x-api-key header is required", 401)
        if self.api_key is not None and key != self.api_key:
            raise _invalid("invalid x-api-key", 401)
        if not request.headers.get("anthropic-version"):
            raise _invalid("anthropic-version: header is required")

    def _validate(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise _invalid("There was an error parsing the body of your request: expected a JSON object")
        for key, value in body.items():
            if key not in _KNOWN_PARAMS:
                raise _invalid(f"{key}: Extra inputs are not permitted")
            if value is None:
                raise _invalid(f"{key}: Input should be a valid {_EXPECTED_KIND.get(key, 'dictionary')}")
        if "model" not in body:
            raise _invalid("model: Field required")
        if not isinstance(body["model"], str):
            raise _invalid("model: Input should be a valid string")
        if "max_tokens" not in body:
            raise _invalid("max_tokens: Field required")
        max_tokens = body["max_tokens"]
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
            raise _invalid("max_tokens: Input should be a valid integer")
        if max_tokens < 1:
            raise _invalid("max_tokens: Input should be greater than or equal to 1")
        self._validate_messages(body.get("messages"))
        self._validate_system(body.get("system"))
        self._validate_sampling(body)
        self._validate_tools(body.get("tools"), body.get("tool_choice"))

    def _validate_messages(self, messages: Any) -> None:
        if messages is None:
            raise _invalid("messages: Field required")
        if not isinstance(messages, list):
            raise _invalid("messages: Input should be a valid list")
        if not messages:
            raise _invalid("messages: at least one message is required")
        for index, message in enumerate(messages):
            if not isinstance(message, dict):
                raise _invalid(f"messages.{index}: Input should be a valid dictionary")
            role = message.get("role")
            if role == "system":
                raise _invalid(
                    f'messages.{index}.role: Unexpected role "system". The Messages API accepts a top-level '
                    '`system` parameter, not "system" as an input message role.'
                )
            if role not in ("user", "assistant"):
                raise _invalid(f"messages.{index}.role: Input should be 'user' or 'assistant'")
            if index == 0 and role != "user":
                raise _invalid('messages: first message must use the "user" role')
            if index > 0 and messages[index - 1]["role"] == role:
                raise _invalid(
                    'messages: roles must alternate between "user" and "assistant", but found multiple '
                    f'"{role}" roles in a row'
                )
            is_final_assistant = role == "assistant" and index == len(messages) - 1
            self._validate_content(index, role, message.get("content", ...), allow_empty=is_final_assistant)
        self._validate_tool_pairing(messages)

    def _validate_content(self, index: int, role: str, content: Any, *, allow_empty: bool) -> None:
        where = f"messages.{index}"
        if content is ...:
            raise _invalid(f"{where}.content: Field required")
        if isinstance(content, str):
            if not content and not allow_empty:
                raise _invalid(f"{where}: {_EMPTY_CONTENT}")
            return
        if not isinstance(content, list):
            raise _invalid(f"{where}.content: Input should be a valid list")
        if not content and not allow_empty:
            raise _invalid(f"{where}: {_EMPTY_CONTENT}")
        for block_index, block in enumerate(content):
            self._validate_block(f"{where}.content.{block_index}", role, block)

    def _validate_block(self, where: str, role: str, block: Any) -> None:
        if not isinstance(block, dict):
            raise _invalid(f"{where}: Input should be a valid dictionary")
        kind = block.get("type")
        if kind not in _BLOCK_TYPES:
            raise _tag_mismatch(where, kind, _BLOCK_TYPES)
        checks: dict[str, Callable[[], None]] = {
            "text": lambda: self._check_text(where, block),
            "image": lambda: self._check_image(where, block),
            "tool_use": lambda: self._check_tool_use(where, role, block),
            "tool_result": lambda: self._check_tool_result(where, role, block),
        }
        if kind in checks:
            checks[kind]()

    @staticmethod
    def _check_text(where: str, block: dict[str, Any]) -> None:
        if not isinstance(block.get("text"), str):
            raise _invalid(f"{where}.text: Field required")
        if not block["text"]:
            raise _invalid(f"{where}: text content blocks must be non-empty")

    @staticmethod
    def _check_image(where: str, block: dict[str, Any]) -> None:
        source = block.get("source")
        if not isinstance(source, dict):
            raise _invalid(f"{where}.image.source: Field required")
        if source.get("type") == "base64":
            if source.get("media_type") not in _IMAGE_MEDIA_TYPES:
                allowed = ", ".join(f"'{media}'" for media in _IMAGE_MEDIA_TYPES)
                raise _invalid(f"{where}.image.source.base64.media_type: Input should be {allowed}")
            if not isinstance(source.get("data"), str):
                raise _invalid(f"{where}.image.source.base64.data: Field required")
        elif source.get("type") == "url":
            if not isinstance(source.get("url"), str):
                raise _invalid(f"{where}.image.source.url.url: Field required")
        elif source.get("type") != "file":
            raise _tag_mismatch(f"{where}.image.source", source.get("type"), ("base64", "url", "file"))

    @staticmethod
    def _check_tool_use(where: str, role: str, block: dict[str, Any]) -> None:
        if role != "assistant":
            raise _invalid(f"{where}: tool_use blocks can only appear in assistant messages")
        for key in ("id", "name"):
            if not isinstance(block.get(key), str):
                raise _invalid(f"{where}.tool_use.{key}: Field required")
        # A translator must json.loads OpenAI's argument strings: the API wants an object here.
        if not isinstance(block.get("input"), dict):
            raise _invalid(f"{where}.tool_use.input: Input should be a valid dictionary")

    @staticmethod
    def _check_tool_result(where: str, role: str, block: dict[str, Any]) -> None:
        if role != "user":
            raise _invalid(f"{where}: tool_result blocks can only appear in user messages")
        if not isinstance(block.get("tool_use_id"), str):
            raise _invalid(f"{where}.tool_result.tool_use_id: Field required")
        content = block.get("content", "")
        if not isinstance(content, str | list):
            raise _invalid(f"{where}.tool_result.content: Input should be a valid list")

    def _validate_tool_pairing(self, messages: list[dict[str, Any]]) -> None:
        """Each tool_use is answered by a tool_result in the next message, tool_results first."""
        for index, message in enumerate(messages):
            content = message.get("content")
            blocks = content if isinstance(content, list) else []
            previous = messages[index - 1].get("content") if index > 0 else None
            previous_blocks = previous if isinstance(previous, list) else []
            pending = [block["id"] for block in previous_blocks if block.get("type") == "tool_use"]
            if message["role"] == "assistant":
                uses = [block["id"] for block in blocks if block.get("type") == "tool_use"]
                following = messages[index + 1].get("content") if index + 1 < len(messages) else None
                answered = {
                    block.get("tool_use_id")
                    for block in (following if isinstance(following, list) else [])
                    if isinstance(block, dict) and block.get("type") == "tool_result"
                }
                missing = [use for use in uses if use not in answered]
                if missing:
                    raise _invalid(
                        f"messages.{index + 1}: `tool_use` ids were found without `tool_result` blocks "
                        f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                        "corresponding `tool_result` block in the next message."
                    )
                continue
            seen_other = False
            for block_index, block in enumerate(blocks):
                if block.get("type") != "tool_result":
                    seen_other = True
                    continue
                where = f"messages.{index}.content.{block_index}"
                if seen_other:
                    raise _invalid(
                        f"{where}: `tool_result` blocks must come before any other content in a user message"
                    )
                if block["tool_use_id"] not in pending:
                    raise _invalid(
                        f"{where}: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{block['tool_use_id']}. Each `tool_result` block must have a corresponding "
                        "`tool_use` block in the previous message."
                    )

    @staticmethod
    def _validate_system(system: Any) -> None:
        if system is None or isinstance(system, str):
            return
        if not isinstance(system, list):
            raise _invalid("system: Input should be a valid string")
        for index, block in enumerate(system):
            if (
                not isinstance(block, dict)
                or block.get("type") != "text"
                or not isinstance(block.get("text"), str)
            ):
                raise _invalid(f"system.{index}: Input should be a valid text block")

    @staticmethod
    def _validate_sampling(body: dict[str, Any]) -> None:
        for name in ("temperature", "top_p"):
            if name not in body:
                continue
            value = body[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _invalid(f"{name}: Input should be a valid number")
            if value > 1:
                raise _invalid(f"{name}: Input should be less than or equal to 1")
            if value < 0:
                raise _invalid(f"{name}: Input should be greater than or equal to 0")
        if "stream" in body and not isinstance(body["stream"], bool):
            raise _invalid("stream: Input should be a valid boolean")
        stops = body.get("stop_sequences", [])
        if not isinstance(stops, list) or not all(isinstance(stop, str) for stop in stops):
            raise _invalid("stop_sequences: Input should be a valid list of strings")

    @staticmethod
    def _validate_tools(tools: Any, tool_choice: Any) -> None:
        if tools is not None:
            if not isinstance(tools, list):
                raise _invalid("tools: Input should be a valid list")
            for index, tool in enumerate(tools):
                where = f"tools.{index}"
                if not isinstance(tool, dict):
                    raise _invalid(f"{where}: Input should be a valid dictionary")
                if tool.get("type", "custom") != "custom":
                    continue  # server tools (web_search_..., bash_...) have their own typed shapes
                if not isinstance(tool.get("name"), str):
                    raise _invalid(f"{where}.custom.name: Field required")
                schema = tool.get("input_schema")
                if not isinstance(schema, dict):
                    raise _invalid(f"{where}.custom.input_schema: Field required")
                if schema.get("type") != "object":
                    raise _invalid(f"{where}.custom.input_schema.type: Input should be 'object'")
        if tool_choice is not None:
            if not isinstance(tool_choice, dict):
                raise _invalid(
                    "tool_choice: Input should be a valid dictionary or object to extract fields from"
                )
            if tool_choice.get("type") not in _TOOL_CHOICE_TYPES:
                raise _tag_mismatch("tool_choice", tool_choice.get("type"), _TOOL_CHOICE_TYPES)
            if tool_choice["type"] == "tool" and not isinstance(tool_choice.get("name"), str):
                raise _invalid("tool_choice.tool.name: Field required")

    # ------------------------------------------------------------------------- wire format

    def new_request_id(self) -> str:
        return _random_id("req_011C", 20)

    def response_headers(self, request_id: str) -> dict[str, str]:
        return {"request-id": request_id}

    def error_body(self, status: int, request_id: str) -> dict[str, Any]:
        default = (
            ("invalid_request_error", "Request failed.") if status < 500 else ("api_error", "Internal error")
        )
        error_type, message = _ERRORS.get(status, default)
        return {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}

    def default_text(self, body: dict[str, Any]) -> str:
        for message in reversed(body["messages"]):
            if message["role"] == "user" and (text := text_of(message["content"])):
                return "fake: " + text
        return "fake: "

    def prompt_words(self, body: dict[str, Any]) -> int:
        texts = [text_of(body.get("system"))]
        for message in body["messages"]:
            texts.append(text_of(message["content"]))
            if isinstance(message["content"], list):
                texts.extend(
                    text_of(block.get("content"))
                    for block in message["content"]
                    if isinstance(block, dict) and block.get("type") == "tool_result"
                )
        return max(1, estimate_tokens(*texts))

    @staticmethod
    def _stop(body: dict[str, Any], outcome: Outcome) -> tuple[str, str | None]:
        reason = outcome.finish_reason or ("tool_use" if outcome.calls else "end_turn")
        if reason != "stop_sequence":
            return reason, None
        stops = body.get("stop_sequences") or ["\n\nHuman:"]
        return reason, stops[0]

    @staticmethod
    def _usage(outcome: Outcome, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": outcome.prompt_tokens,
            "cache_creation_input_tokens": outcome.cache_creation_tokens,
            "cache_read_input_tokens": outcome.cached_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": outcome.cache_creation_tokens,
                "ephemeral_1h_input_tokens": 0,
            },
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

    @staticmethod
    def _blocks(outcome: Outcome) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if outcome.text:
            blocks.append({"type": "text", "text": outcome.text})
        blocks.extend(
            {"type": "tool_use", "id": _random_id("toolu_01"), "name": name, "input": args}
            for name, args in outcome.calls
        )
        return blocks

    def completion_body(self, body: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
        stop_reason, stop_sequence = self._stop(body, outcome)
        return {
            "id": _random_id("msg_01"),
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": self._blocks(outcome),
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": self._usage(outcome, outcome.completion_tokens),
        }

    def stream_events(self, body: dict[str, Any], outcome: Outcome) -> list[bytes]:
        stop_reason, stop_sequence = self._stop(body, outcome)
        message = {
            "id": _random_id("msg_01"),
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # Like the real API: input usage up front, a token-ish output count that message_delta replaces.
            "usage": self._usage(outcome, 1),
        }
        events = [_sse({"type": "message_start", "message": message}), _sse({"type": "ping"})]
        for index, block in enumerate(self._blocks(outcome)):
            start: dict[str, Any]
            if block["type"] == "text":
                start = {"type": "text", "text": ""}
                deltas = [{"type": "text_delta", "text": piece} for piece in split_text(block["text"])]
            else:
                start = {**block, "input": {}}
                # The API opens every tool input with an empty fragment before the JSON pieces.
                pieces = ["", *split_fragments(json.dumps(block["input"]))]
                deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in pieces]
            events.append(_sse({"type": "content_block_start", "index": index, "content_block": start}))
            events.extend(
                _sse({"type": "content_block_delta", "index": index, "delta": delta}) for delta in deltas
            )
            events.append(_sse({"type": "content_block_stop", "index": index}))
        events.append(
            _sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                    "usage": {"output_tokens": outcome.completion_tokens},
                }
            )
        )
        events.append(_sse({"type": "message_stop"}))
        return events
