"""A fake OpenAI Chat Completions server speaking the exact wire format of reference §1.

Serves ``POST /v1/chat/completions`` (JSON and ``data:``-only SSE ending in ``data: [DONE]``),
``POST /v1/embeddings`` (float or base64 vectors, ``dimensions`` honoured), the legacy
``POST /v1/completions`` (``text_completion`` objects and chunks, ``max_tokens`` defaulting to 16),
``GET /v1/models`` and ``GET /v1/models/{id}``; anything else gets OpenAI's "Invalid URL" 404.
Requests are validated the way OpenAI rejects what a gateway could get wrong (missing model,
empty messages, bad roles, unanswered tool calls, object-valued tool arguments, unknown top-level
parameters, ``stream_options`` without ``stream``...) with OpenAI's own error bodies, so a
translation bug fails an e2e test as it would fail in production.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import secrets
import string
import struct
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from .behaviours import (
    Behaviour,
    Error,
    Outcome,
    Reply,
    estimate_tokens,
    split_fragments,
    split_text,
    text_of,
)
from .server import ApiError, FakeProviderServer, unix_time

_ALNUM = string.ascii_letters + string.digits

# OA-spec CreateChatCompletionRequest properties: OpenAI rejects any other top-level key with
# "Unrecognized request argument supplied", which catches provider-specific fields leaking through.
_KNOWN_PARAMS = frozenset(
    {
        "model", "messages", "max_completion_tokens", "max_tokens", "temperature", "top_p", "n", "stop",
        "seed", "logprobs", "top_logprobs", "frequency_penalty", "presence_penalty", "logit_bias", "user",
        "safety_identifier", "prompt_cache_key", "prompt_cache_retention", "response_format", "stream",
        "stream_options", "tools", "tool_choice", "parallel_tool_calls", "reasoning_effort", "service_tier",
        "modalities", "audio", "store", "metadata", "prediction", "web_search_options", "verbosity",
        "functions", "function_call",
    }
)  # fmt: skip
_ROLES = ("system", "assistant", "user", "function", "tool", "developer")
# OA-spec CreateEmbeddingRequest and CreateCompletionRequest properties (reference §1.6, §1.7).
_EMBEDDING_PARAMS = frozenset({"model", "input", "encoding_format", "dimensions", "user"})
_COMPLETION_PARAMS = frozenset(
    {
        "model", "prompt", "suffix", "max_tokens", "temperature", "top_p", "n", "best_of", "echo",
        "logprobs", "stop", "stream", "stream_options", "seed", "logit_bias", "presence_penalty",
        "frequency_penalty", "user",
    }
)  # fmt: skip
# text-embedding-3-small's size: the dimension count when the request does not set `dimensions`.
DEFAULT_EMBEDDING_DIMENSIONS = 1536
_PART_TYPES = {
    "user": ("text", "image_url", "input_audio", "file"),
    "assistant": ("text", "refusal"),
    "system": ("text",),
    "developer": ("text",),
    "tool": ("text",),
}

_JSON_TYPE_NAMES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
}

# Default error bodies per status, as OpenAI sends them (message, type, code).
_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: (
        "Incorrect API key provided: sk-fake***. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        "invalid_api_key",
    ),
    403: (
        "Country, region, or territory not supported",
        "request_forbidden",
        "unsupported_country_region_territory",
    ),
    404: (
        "The model does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
    409: ("The request conflicted with another request.", "invalid_request_error", None),
    429: (
        "Rate limit reached for requests per min (RPM): Limit 3, Used 3, Requested 1. "
        "Please try again in 20s.",
        "requests",
        "rate_limit_exceeded",
    ),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


def _error(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> ApiError:
    return ApiError(status, {"error": {"message": message, "type": type_, "param": param, "code": code}})


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return "a number"
    return _JSON_TYPE_NAMES.get(type(value), "a value")


def _invalid_type(param: str, expected: str, value: Any) -> ApiError:
    return _error(
        400,
        f"Invalid type for '{param}': expected {expected}, but got {_type_name(value)} instead.",
        param=param,
        code="invalid_type",
    )


def _missing(param: str) -> ApiError:
    return _error(
        400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def _supported(values: Sequence[str]) -> str:
    quoted = [f"'{value}'" for value in values]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + ", and " + quoted[-1]


class FakeOpenAI(FakeProviderServer):
    """Fake ``https://api.openai.com/v1``; ``base_url`` ends in ``/v1`` like the SDK's."""

    base_path = "/v1"
    #: The models ``/v1/models`` lists (and chat accepts) unless ``models`` is given.
    default_models: tuple[str, ...] = ("gpt-4o-mini", "gpt-4o")

    def __init__(
        self,
        *,
        api_key: str | None = None,
        default: Behaviour | None = None,
        models: Sequence[str] | None = None,
    ) -> None:
        super().__init__(api_key=api_key, default=default)
        self.models = tuple(models) if models is not None else self.default_models

    # ---------------------------------------------------------------------------- routes

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/chat/completions", self._chat),
            web.post("/v1/embeddings", self._embeddings),
            web.post("/v1/completions", self._completions),
            web.get("/v1/models", self._list_models),
            web.get("/v1/models/{model}", self._get_model),
            web.route("*", "/{tail:.*}", self._invalid_url),
        ]

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        _, body = await self.record(request)
        request_id = self.new_request_id()
        try:
            self._authenticate(request)
            self._validate(body)
        except ApiError as error:
            return self.api_error_response(error, request_id)
        return await self.serve_chat(request, body, request_id)

    async def _list_models(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        request_id = self.new_request_id()
        try:
            self._authenticate(request)
        except ApiError as error:
            return self.api_error_response(error, request_id)
        return self.json_response(
            {"object": "list", "data": [self._model(model) for model in self.models]}, request_id=request_id
        )

    async def _get_model(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        request_id = self.new_request_id()
        model = request.match_info["model"]
        try:
            self._authenticate(request)
            if model not in self.models:
                raise _error(
                    404,
                    f"The model '{model}' does not exist",
                    param="model",
                    code="model_not_found",
                )
        except ApiError as error:
            return self.api_error_response(error, request_id)
        return self.json_response(self._model(model), request_id=request_id)

    async def _invalid_url(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        error = _error(404, f"Invalid URL ({request.method} {request.path})")
        return self.api_error_response(error, self.new_request_id())

    @staticmethod
    def _model(model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": 1686935002, "owned_by": "openai"}

    # ------------------------------------------------------------------- auth and validation

    def _authenticate(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise _error(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization "
                "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field "
                "(with blank username) if you're accessing the API from your browser and are prompted for a "
                "username. You can obtain an API key from https://platform.openai.com/account/api-keys.",
            )
        if self.api_key is not None and key.strip() != self.api_key:
            message, type_, code = _ERRORS[401]
            raise _error(401, message, type_=type_, code=code)

    def _validate(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise _error(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
                "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent "
                "was not valid JSON.)",
            )
        for key in body:
            if key not in _KNOWN_PARAMS:
                raise _error(400, f"Unrecognized request argument supplied: {key}")
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise _error(400, "you must provide a model parameter")
        if "messages" not in body:
            raise _missing("messages")
        messages = body["messages"]
        if not isinstance(messages, list):
            raise _invalid_type("messages", "an array", messages)
        if not messages:
            raise _error(
                400,
                "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty "
                "array instead.",
                param="messages",
                code="empty_array",
            )
        for index, message in enumerate(messages):
            self._validate_message(index, message)
        self._validate_tool_sequence(messages)
        self._validate_sampling(body)
        self._validate_tools(body.get("tools"))

    def _validate_message(self, index: int, message: Any) -> None:
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise _invalid_type(where, "an object", message)
        if "role" not in message:
            raise _missing(f"{where}.role")
        role = message["role"]
        if role not in _ROLES:
            raise _error(
                400,
                f"Invalid value: '{role}'. Supported values are: {_supported(_ROLES)}.",
                param=f"{where}.role",
                code="invalid_value",
            )
        has_calls = role == "assistant" and bool(message.get("tool_calls") or message.get("function_call"))
        if "content" not in message and not has_calls:
            raise _missing(f"{where}.content")
        content = message.get("content")
        if content is None and not has_calls:
            raise _error(
                400, "Invalid value for 'content': expected a string, got null.", param=f"{where}.content"
            )
        if isinstance(content, list):
            allowed = _PART_TYPES.get(role, ("text",))
            for part_index, part in enumerate(content):
                part_where = f"{where}.content[{part_index}]"
                if not isinstance(part, dict):
                    raise _invalid_type(part_where, "an object", part)
                if part.get("type") not in allowed:
                    raise _error(
                        400,
                        f"Invalid value: '{part.get('type')}'. Supported values are: {_supported(allowed)}.",
                        param=f"{part_where}.type",
                        code="invalid_value",
                    )
                if part["type"] == "text" and not isinstance(part.get("text"), str):
                    raise _missing(f"{part_where}.text")
        elif content is not None and not isinstance(content, str):
            raise _invalid_type(f"{where}.content", "one of a string or array of objects", content)
        if role == "tool" and not isinstance(message.get("tool_call_id"), str):
            raise _missing(f"{where}.tool_call_id")
        if role == "assistant" and "tool_calls" in message:
            self._validate_tool_calls(where, message["tool_calls"])

    def _validate_tool_calls(self, where: str, calls: Any) -> None:
        if not isinstance(calls, list):
            raise _invalid_type(f"{where}.tool_calls", "an array", calls)
        for call_index, call in enumerate(calls):
            call_where = f"{where}.tool_calls[{call_index}]"
            if not isinstance(call, dict):
                raise _invalid_type(call_where, "an object", call)
            for key in ("id", "type", "function"):
                if key not in call:
                    raise _missing(f"{call_where}.{key}")
            function = call["function"]
            if not isinstance(function, dict):
                raise _invalid_type(f"{call_where}.function", "an object", function)
            if not isinstance(function.get("name"), str):
                raise _missing(f"{call_where}.function.name")
            # A gateway translating Anthropic tool_use must re-encode the input object as a string.
            if not isinstance(function.get("arguments"), str):
                raise _invalid_type(f"{call_where}.function.arguments", "a string", function.get("arguments"))

    def _validate_tool_sequence(self, messages: list[dict[str, Any]]) -> None:
        """Each tool call is answered by tool messages right after it; each tool message answers one."""
        open_ids: list[str] = []  # calls of the latest assistant message not answered yet
        for index, message in enumerate(messages):
            if message["role"] == "tool":
                if message["tool_call_id"] not in open_ids:
                    raise _error(
                        400,
                        "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                        "message with 'tool_calls'.",
                        param=f"messages.[{index}].role",
                    )
                open_ids.remove(message["tool_call_id"])
                continue
            if open_ids:
                raise _error(
                    400,
                    "An assistant message with 'tool_calls' must be followed by tool messages responding to "
                    "each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                    + ", ".join(open_ids),
                    param=f"messages.[{index}].role",
                )
            if message["role"] == "assistant":
                open_ids = [call["id"] for call in message.get("tool_calls") or []]
        if open_ids:
            raise _error(
                400,
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                "'tool_call_id'. The following tool_call_ids did not have response messages: "
                + ", ".join(open_ids),
                param="messages",
            )

    def _validate_sampling(self, body: dict[str, Any]) -> None:
        for name, low, high in (("temperature", 0, 2), ("top_p", 0, 1)):
            value = body.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _invalid_type(name, "a decimal", value)
            if value > high:
                raise _error(
                    400,
                    f"Invalid '{name}': decimal above maximum value. Expected a value <= {high}, but got "
                    f"{value} instead.",
                    param=name,
                    code="decimal_above_max_value",
                )
            if value < low:
                raise _error(
                    400,
                    f"Invalid '{name}': decimal below minimum value. Expected a value >= {low}, but got "
                    f"{value} instead.",
                    param=name,
                    code="decimal_below_min_value",
                )
        stream = body.get("stream")
        if stream is not None and not isinstance(stream, bool):
            raise _invalid_type("stream", "a boolean", stream)
        if body.get("stream_options") is not None and stream is not True:
            raise _error(400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.")

    def _validate_tools(self, tools: Any) -> None:
        if tools is None:
            return
        if not isinstance(tools, list):
            raise _invalid_type("tools", "an array", tools)
        for index, tool in enumerate(tools):
            where = f"tools[{index}]"
            if not isinstance(tool, dict):
                raise _invalid_type(where, "an object", tool)
            if tool.get("type") == "function":
                if not isinstance(tool.get("function"), dict):
                    raise _missing(f"{where}.function")
                if not isinstance(tool["function"].get("name"), str):
                    raise _missing(f"{where}.function.name")
            elif tool.get("type") != "custom":
                raise _error(
                    400,
                    f"Invalid value: '{tool.get('type')}'. Supported values are: 'function' and 'custom'.",
                    param=f"{where}.type",
                    code="invalid_value",
                )

    # ------------------------------------------------------------------------- wire format

    def new_request_id(self) -> str:
        return "req_" + secrets.token_hex(16)

    def response_headers(self, request_id: str) -> dict[str, str]:
        return {"x-request-id": request_id, "openai-processing-ms": "42", "openai-version": "2020-10-01"}

    def error_body(self, status: int, request_id: str) -> dict[str, Any]:
        default = ("Request failed.", "invalid_request_error" if status < 500 else "server_error", None)
        message, type_, code = _ERRORS.get(status, default)
        return {"error": {"message": message, "type": type_, "param": None, "code": code}}

    def default_text(self, body: dict[str, Any]) -> str:
        for message in reversed(body["messages"]):
            if message["role"] == "user" and (text := text_of(message.get("content"))):
                return "fake: " + text
        return "fake: "

    def prompt_words(self, body: dict[str, Any]) -> int:
        return max(1, estimate_tokens(*(text_of(message.get("content")) for message in body["messages"])))

    @staticmethod
    def _usage(outcome: Outcome) -> dict[str, Any]:
        return {
            "prompt_tokens": outcome.prompt_tokens,
            "completion_tokens": outcome.completion_tokens,
            "total_tokens": outcome.prompt_tokens + outcome.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": outcome.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    @staticmethod
    def _finish_reason(outcome: Outcome) -> str:
        return outcome.finish_reason or ("tool_calls" if outcome.calls else "stop")

    @staticmethod
    def _call_ids(outcome: Outcome) -> list[str]:
        return ["call_" + "".join(secrets.choice(_ALNUM) for _ in range(24)) for _ in outcome.calls]

    def completion_body(self, body: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": outcome.text,
            "refusal": None,
            "annotations": [],
        }
        if outcome.calls:
            message["tool_calls"] = [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                for call_id, (name, args) in zip(self._call_ids(outcome), outcome.calls, strict=True)
            ]
        return {
            "id": "chatcmpl-" + "".join(secrets.choice(_ALNUM) for _ in range(29)),
            "object": "chat.completion",
            "created": unix_time(),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": self._finish_reason(outcome),
                }
            ],
            "usage": self._usage(outcome),
            "service_tier": "default",
            "system_fingerprint": "fp_" + secrets.token_hex(5),
        }

    def stream_events(self, body: dict[str, Any], outcome: Outcome) -> list[bytes]:
        options = body.get("stream_options") or {}
        include_usage = options.get("include_usage") is True
        # OpenAI pads every chunk with a random "obfuscation" string unless the caller opts out.
        obfuscate = options.get("include_obfuscation") is not False
        envelope = {
            "id": "chatcmpl-" + "".join(secrets.choice(_ALNUM) for _ in range(29)),
            "object": "chat.completion.chunk",
            "created": unix_time(),
            "model": body["model"],
            "service_tier": "default",
            "system_fingerprint": "fp_" + secrets.token_hex(5),
        }

        def chunk(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> bytes:
            payload: dict[str, Any] = {**envelope, "choices": choices}
            if include_usage:
                payload["usage"] = usage
            if obfuscate:
                payload["obfuscation"] = secrets.token_urlsafe(secrets.randbelow(8) + 2)
            return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"

        def delta(content: dict[str, Any], finish_reason: str | None = None) -> bytes:
            return chunk([{"index": 0, "delta": content, "logprobs": None, "finish_reason": finish_reason}])

        fragments: list[dict[str, Any]] = []  # tool_calls delta items, in order
        for index, (call_id, (name, args)) in enumerate(
            zip(self._call_ids(outcome), outcome.calls, strict=True)
        ):
            fragments.append(
                {
                    "index": index,
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": ""},
                }
            )
            fragments.extend(
                {"index": index, "function": {"arguments": piece}}
                for piece in split_fragments(json.dumps(args))
            )

        events: list[bytes] = []
        if outcome.text is None and fragments:
            # Like OpenAI: a tool-only turn opens with the role and the first call's header in one delta.
            events.append(
                delta(
                    {"role": "assistant", "content": None, "tool_calls": [fragments.pop(0)], "refusal": None}
                )
            )
        else:
            events.append(delta({"role": "assistant", "content": "", "refusal": None}))
            events.extend(delta({"content": piece}) for piece in split_text(outcome.text or ""))
        events.extend(delta({"tool_calls": [fragment]}) for fragment in fragments)
        events.append(delta({}, self._finish_reason(outcome)))
        if include_usage:
            events.append(chunk([], self._usage(outcome)))
        events.append(b"data: [DONE]\n\n")
        return events

    # ------------------------------------------------------------- embeddings (reference §1.7)

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        _, body = await self.record(request)
        request_id = self.new_request_id()
        try:
            self._authenticate(request)
            inputs = self._validate_embeddings(body)
        except ApiError as error:
            return self.api_error_response(error, request_id)
        behaviour = self.next_behaviour()
        if isinstance(behaviour, Error):
            return self.error_reply(behaviour, request_id)
        return self.json_response(self.embeddings_body(body, inputs), request_id=request_id)

    def _validate_embeddings(self, body: Any) -> list[Any]:
        """The inputs as a list (strings or token lists), after OpenAI's checks of an embeddings body."""
        if not isinstance(body, dict):
            raise _error(400, "We could not parse the JSON body of your request.")
        for key in body:
            if key not in _EMBEDDING_PARAMS:
                raise _error(400, f"Unrecognized request argument supplied: {key}")
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise _error(400, "you must provide a model parameter")
        if "input" not in body:
            raise _missing("input")
        raw = body["input"]
        # OpenAI's wording for an empty string, an empty array or a mixed array.
        invalid = _error(
            400,
            "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
        )
        if isinstance(raw, str):
            inputs: list[Any] = [raw]
        elif isinstance(raw, list) and raw and all(type(t) is int for t in raw):
            inputs = [raw]
        elif isinstance(raw, list) and raw:
            inputs = raw
        else:
            raise invalid
        for item in inputs:
            if isinstance(item, str):
                if not item:
                    raise invalid
            elif not (isinstance(item, list) and item and all(type(t) is int and t >= 0 for t in item)):
                raise invalid
        encoding = body.get("encoding_format")
        if encoding is not None and encoding not in ("float", "base64"):
            raise _error(
                400,
                f"Invalid value: '{encoding}'. Supported values are: 'float' and 'base64'.",
                param="encoding_format",
                code="invalid_value",
            )
        dimensions = body.get("dimensions")
        if dimensions is not None:
            if type(dimensions) is not int:
                raise _invalid_type("dimensions", "an integer", dimensions)
            if dimensions < 1:
                raise _error(
                    400,
                    f"Invalid 'dimensions': integer below minimum value. Expected a value >= 1, but got "
                    f"{dimensions} instead.",
                    param="dimensions",
                    code="integer_below_min_value",
                )
        return inputs

    @staticmethod
    def embedding(item: str | list[int], dimensions: int) -> list[float]:
        """The fake's vector for one input: seeded by the input, float32 values like OpenAI's."""
        seed = hashlib.sha256(json.dumps(item).encode()).digest()
        rng = random.Random(seed)
        values = [rng.uniform(-1.0, 1.0) for _ in range(dimensions)]
        return list(struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *values)))

    def embeddings_body(self, body: dict[str, Any], inputs: list[Any]) -> dict[str, Any]:
        dimensions = body.get("dimensions") or DEFAULT_EMBEDDING_DIMENSIONS
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, item in enumerate(inputs):
            vector = self.embedding(item, dimensions)
            encoded: Any = vector
            if as_base64:
                encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(max(1, estimate_tokens(i)) if isinstance(i, str) else len(i) for i in inputs)
        return {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    # ------------------------------------------------------ legacy completions (reference §1.6)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        """Answers with the next behaviour: ``Error`` as is; anything else as its ``Reply`` (text, counts)."""
        _, body = await self.record(request)
        request_id = self.new_request_id()
        try:
            self._authenticate(request)
            prompts = self._validate_completions(body)
        except ApiError as error:
            return self.api_error_response(error, request_id)
        behaviour = self.next_behaviour()
        if isinstance(behaviour, Error):
            return self.error_reply(behaviour, request_id)
        reply = behaviour if isinstance(behaviour, Reply) else Reply()
        choices, usage = self._text_choices(body, prompts, reply)
        envelope = {
            "id": "cmpl-" + "".join(secrets.choice(_ALNUM) for _ in range(29)),
            "object": "text_completion",
            "created": unix_time(),
            "model": body["model"],
            "system_fingerprint": "fp_" + secrets.token_hex(5),
        }
        if body.get("stream") is not True:
            return self.json_response({**envelope, "choices": choices, "usage": usage}, request_id=request_id)
        include_usage = (body.get("stream_options") or {}).get("include_usage") is True

        def event(chunk_choices: list[dict[str, Any]], chunk_usage: dict[str, Any] | None = None) -> bytes:
            payload: dict[str, Any] = {**envelope, "choices": chunk_choices}
            if include_usage:
                payload["usage"] = chunk_usage
            return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"

        response = web.StreamResponse(
            headers={**self.response_headers(request_id), "Content-Type": self.stream_content_type}
        )
        await response.prepare(request)
        for choice in choices:
            for piece in split_text(choice["text"]):
                await response.write(
                    event(
                        [{"text": piece, "index": choice["index"], "logprobs": None, "finish_reason": None}]
                    )
                )
            await response.write(event([{**choice, "text": ""}]))
        if include_usage:
            await response.write(event([], usage))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def _validate_completions(self, body: Any) -> list[str]:
        """The prompt texts (a token prompt reads as its ids), after OpenAI's checks of a completions body."""
        if not isinstance(body, dict):
            raise _error(400, "We could not parse the JSON body of your request.")
        for key in body:
            if key not in _COMPLETION_PARAMS:
                raise _error(400, f"Unrecognized request argument supplied: {key}")
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise _error(400, "you must provide a model parameter")
        if "prompt" not in body:
            raise _missing("prompt")
        prompt = body["prompt"]
        if isinstance(prompt, str):
            prompts = [prompt]
        elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
            prompts = list(prompt)
        elif isinstance(prompt, list) and prompt and all(type(t) is int for t in prompt):
            prompts = [" ".join(map(str, prompt))]
        elif isinstance(prompt, list) and prompt and all(isinstance(p, list) and p for p in prompt):
            prompts = [" ".join(map(str, p)) for p in prompt]
        else:
            raise _invalid_type("prompt", "one of a string, array of strings, array of integers", prompt)
        logprobs = body.get("logprobs")
        if logprobs is not None:
            if type(logprobs) is not int:  # the boolean of Chat Completions is a type error here
                raise _invalid_type("logprobs", "an integer", logprobs)
            if not 0 <= logprobs <= 5:
                raise _error(
                    400,
                    f"Invalid 'logprobs': integer above maximum value. Expected a value <= 5, but got "
                    f"{logprobs} instead.",
                    param="logprobs",
                    code="integer_above_max_value",
                )
        for name in ("max_tokens", "n", "best_of", "seed"):
            value = body.get(name)
            if value is not None and type(value) is not int:
                raise _invalid_type(name, "an integer", value)
        self._validate_sampling(body)
        return prompts

    @staticmethod
    def _text_choices(
        body: dict[str, Any], prompts: list[str], reply: Reply
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        max_tokens = body.get("max_tokens") or 16  # OpenAI's default for this endpoint
        n = body.get("n") or 1
        choices = []
        completion_tokens = 0
        for number, prompt in enumerate(prompts):
            words = (reply.text if reply.text is not None else "fake: " + prompt).split(" ")
            finish = reply.finish_reason or "stop"
            if len(words) > max_tokens:
                words, finish = words[:max_tokens], "length"
            text = " ".join(words)
            completion_tokens += n * max(1, estimate_tokens(text))
            if body.get("echo"):
                text = prompt + text
            choices.extend(
                {"text": text, "index": number * n + k, "logprobs": None, "finish_reason": finish}
                for k in range(n)
            )
        prompt_tokens = sum(max(1, estimate_tokens(p)) for p in prompts)
        if reply.prompt_tokens is not None:
            prompt_tokens = reply.prompt_tokens
        if reply.completion_tokens is not None:
            completion_tokens = reply.completion_tokens
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        return choices, usage
