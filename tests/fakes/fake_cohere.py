"""A fake Cohere v2 API server speaking the wire format of reference §6.4.

Serves ``POST /v2/chat`` (JSON, and SSE with ``event:`` + ``data:`` lines: ``message-start``,
``content-start``/``-delta``/``-end`` for text, ``tool-plan-delta`` and ``tool-call-start``/
``-delta``/``-end`` for tool turns, ``message-end`` with the finish reason and usage) and
``POST /v2/embed`` (``embeddings_by_type`` replies). Requests are validated the way a sloppy
OpenAI-to-Cohere translator gets caught: OpenAI-only keys (``top_p``, ``n``, ``stop``,
``stream_options``, ...), injected nulls, a ``developer`` role, lower-case ``tool_choice``,
argument objects instead of JSON strings, tool results that answer no earlier tool call, ``p``
outside [0.01, 0.99], OpenAI's ``json_schema`` response format. Errors use Cohere's
``{"id", "message"}`` body. Usage reports ``billed_units`` and a larger ``tokens`` count (Cohere
also counts its own prompt template there), so a translator reading the wrong one is caught.
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
import string
import uuid
from typing import Any

from aiohttp import web

from .behaviours import Error, Outcome, estimate_tokens, split_fragments, split_text, text_of
from .server import ApiError, FakeProviderServer

_ALNUM = string.ascii_lowercase + string.digits

_CHAT_PARAMS = frozenset(
    {
        "model", "messages", "stream", "tools", "strict_tools", "documents", "citation_options",
        "response_format", "safety_mode", "max_tokens", "stop_sequences", "temperature", "seed",
        "frequency_penalty", "presence_penalty", "k", "p", "logprobs", "tool_choice", "thinking", "priority",
    }
)  # fmt: skip
_EMBED_PARAMS = frozenset(
    {"model", "texts", "images", "inputs", "input_type", "embedding_types", "output_dimension", "max_tokens",
     "truncate"}
)  # fmt: skip
_INPUT_TYPES = ("search_document", "search_query", "classification", "clustering", "image")
_EMBEDDING_TYPES = ("float", "int8", "uint8", "binary", "ubinary", "base64")
_OUTPUT_DIMENSIONS = (256, 512, 1024, 1536)
DEFAULT_EMBED_DIMENSIONS = 8  # small on purpose: tests compare whole vectors
# Tokens Cohere adds for its own prompt template: counted in `usage.tokens`, not billed.
TEMPLATE_TOKENS = 40

_ERRORS: dict[int, str] = {
    400: "invalid request: the request could not be processed",
    401: "invalid api token",
    403: "You are not authorized to access this resource",
    404: "model 'command-x' not found, make sure the correct model ID was used and that you have access to "
    "the model.",
    422: "invalid request: unprocessable entity",
    429: "You are using a Trial key, which is limited to 20 API calls / minute.",
    500: "internal server error, this has been reported to our developers.",
    503: "service unavailable, please try again later",
}


def _invalid(message: str, status: int = 400) -> ApiError:
    """An ApiError whose body the route completes with the request id."""
    return ApiError(status, {"message": message})


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class FakeCohere(FakeProviderServer):
    """Fake ``https://api.cohere.com``; ``base_url`` has no path (the gateway appends ``/v2/...``)."""

    base_path = ""

    # ---------------------------------------------------------------------------- routes

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v2/chat", self._chat),
            web.post("/v2/embed", self._embed),
            web.route("*", "/{tail:.*}", self._not_found),
        ]

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        _, body = await self.record(request)
        request_id = self.new_request_id()
        try:
            self._authenticate(request)
            self._validate(body)
        except ApiError as error:
            return self._error_response(error, request_id)
        return await self.serve_chat(request, body, request_id)

    async def _embed(self, request: web.Request) -> web.StreamResponse:
        _, body = await self.record(request)
        request_id = self.new_request_id()
        try:
            self._authenticate(request)
            self._validate_embed(body)
        except ApiError as error:
            return self._error_response(error, request_id)
        behaviour = self.next_behaviour()
        if isinstance(behaviour, Error):
            return self.error_reply(behaviour, request_id)
        return self.json_response(self.embed_body(body, request_id), request_id=request_id)

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        return self._error_response(_invalid("Not Found", 404), self.new_request_id())

    def _error_response(self, error: ApiError, request_id: str) -> web.Response:
        error.body = {"id": request_id, **error.body}
        return self.api_error_response(error, request_id)

    # ------------------------------------------------------------------- auth and validation

    def _authenticate(self, request: web.Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _invalid("no api key supplied", 401)
        if self.api_key is not None and token.strip() != self.api_key:
            raise _invalid("invalid api token", 401)

    def _validate(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise _invalid("invalid request: the body must be a JSON object")
        for key, value in body.items():
            if key not in _CHAT_PARAMS:
                raise _invalid(f"invalid request: unknown field '{key}'")
            if value is None:
                raise _invalid(f"invalid request: '{key}' must not be null")
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise _invalid("invalid request: model must be specified")
        if "stream" in body and not isinstance(body["stream"], bool):
            raise _invalid("invalid request: stream must be a boolean")
        tools = body.get("tools")
        self._validate_messages(body.get("messages"))
        self._validate_tools(tools)
        choice = body.get("tool_choice")
        if choice is not None:
            if choice not in ("REQUIRED", "NONE"):
                raise _invalid(f"invalid request: tool_choice must be one of REQUIRED, NONE, got '{choice}'")
            if choice == "REQUIRED" and not tools:
                raise _invalid("invalid request: tool_choice REQUIRED requires tools to be specified")
        self._validate_sampling(body)
        self._validate_response_format(body.get("response_format"))

    def _validate_messages(self, messages: Any) -> None:
        if not isinstance(messages, list) or not messages:
            raise _invalid("invalid request: messages must be a non-empty list")
        call_ids: set[str] = set()
        for index, message in enumerate(messages):
            where = f"messages[{index}]"
            if not isinstance(message, dict):
                raise _invalid(f"invalid request: {where} must be an object")
            role = message.get("role")
            if role not in ("system", "user", "assistant", "tool"):
                raise _invalid(
                    f"invalid request: {where}.role must be one of system, user, assistant, tool, "
                    f"got '{role}'"
                )
            for key in message:
                if key not in ("role", "content", "tool_calls", "tool_plan", "citations", "tool_call_id"):
                    raise _invalid(f"invalid request: {where} has unknown field '{key}'")
            if role == "assistant":
                call_ids.update(self._validate_assistant(where, message))
            elif role == "tool":
                self._validate_tool_message(where, message, call_ids)
            else:
                self._validate_content(where, role, message.get("content", ...))

    @staticmethod
    def _validate_content(where: str, role: str, content: Any) -> None:
        if content is ...:
            raise _invalid(f"invalid request: {where}.content is required")
        if isinstance(content, str):
            return
        if not isinstance(content, list):
            raise _invalid(f"invalid request: {where}.content must be a string or a list of content items")
        allowed = ("text", "image_url", "document") if role == "user" else ("text",)
        for item_index, item in enumerate(content):
            at = f"{where}.content[{item_index}]"
            kind = item.get("type") if isinstance(item, dict) else None
            if kind not in allowed:
                raise _invalid(
                    f"invalid request: {at}.type must be one of {', '.join(allowed)}, got '{kind}'"
                )
            if kind == "text" and not isinstance(item.get("text"), str):
                raise _invalid(f"invalid request: {at}.text is required")
            if kind == "image_url":
                image = item.get("image_url")
                url = image.get("url") if isinstance(image, dict) else None
                if not isinstance(url, str):
                    raise _invalid(f"invalid request: {at}.image_url.url is required")
                extra = set(image) - {"url", "detail"}
                if extra:
                    raise _invalid(f"invalid request: {at}.image_url has unknown field '{sorted(extra)[0]}'")

    def _validate_assistant(self, where: str, message: dict[str, Any]) -> list[str]:
        calls = message.get("tool_calls")
        if calls is None:
            self._validate_content(where, "assistant", message.get("content", ...))
            return []
        if not isinstance(calls, list) or not calls:
            raise _invalid(f"invalid request: {where}.tool_calls must be a non-empty list")
        ids = []
        for call_index, call in enumerate(calls):
            at = f"{where}.tool_calls[{call_index}]"
            if not isinstance(call, dict) or not isinstance(call.get("id"), str):
                raise _invalid(f"invalid request: {at}.id is required")
            if call.get("type") != "function":
                raise _invalid(f"invalid request: {at}.type must be 'function'")
            function = call.get("function")
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise _invalid(f"invalid request: {at}.function.name is required")
            arguments = function.get("arguments")
            # OpenAI-style JSON strings, not objects: a translator from an object-argument API must encode.
            if not isinstance(arguments, str):
                raise _invalid(f"invalid request: {at}.function.arguments must be a string")
            try:
                json.loads(arguments)
            except ValueError as exc:
                raise _invalid(f"invalid request: {at}.function.arguments is not valid JSON") from exc
            ids.append(call["id"])
        if "content" in message:
            self._validate_content(where, "assistant", message["content"])
        if "tool_plan" in message and not isinstance(message["tool_plan"], str):
            raise _invalid(f"invalid request: {where}.tool_plan must be a string")
        return ids

    @staticmethod
    def _validate_tool_message(where: str, message: dict[str, Any], call_ids: set[str]) -> None:
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str):
            raise _invalid(f"invalid request: {where}.tool_call_id is required")
        if call_id not in call_ids:
            raise _invalid(
                f"invalid request: {where}.tool_call_id '{call_id}' does not match any tool call of a "
                "previous assistant message"
            )
        content = message.get("content", ...)
        if content is ...:
            raise _invalid(f"invalid request: {where}.content is required")
        if isinstance(content, str):
            return
        if not isinstance(content, list):
            raise _invalid(f"invalid request: {where}.content must be a string or a list of content items")
        for item_index, item in enumerate(content):
            kind = item.get("type") if isinstance(item, dict) else None
            if kind not in ("text", "document"):
                raise _invalid(
                    f"invalid request: {where}.content[{item_index}].type must be one of text, document"
                )

    @staticmethod
    def _validate_tools(tools: Any) -> None:
        if tools is None:
            return
        if not isinstance(tools, list):
            raise _invalid("invalid request: tools must be a list")
        for index, tool in enumerate(tools):
            where = f"tools[{index}]"
            if not isinstance(tool, dict) or tool.get("type") != "function":
                raise _invalid(f"invalid request: {where}.type must be 'function'")
            function = tool.get("function")
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise _invalid(f"invalid request: {where}.function.name is required")
            extra = set(function) - {"name", "description", "parameters"}
            if extra:
                raise _invalid(f"invalid request: {where}.function has unknown field '{sorted(extra)[0]}'")
            if "parameters" in function and not isinstance(function["parameters"], dict):
                raise _invalid(f"invalid request: {where}.function.parameters must be an object")

    @staticmethod
    def _validate_sampling(body: dict[str, Any]) -> None:
        ranges = {
            "temperature": (0.0, None),
            "p": (0.01, 0.99),
            "k": (0, 500),
            "frequency_penalty": (0.0, 1.0),
            "presence_penalty": (0.0, 1.0),
        }
        for name, (low, high) in ranges.items():
            if name not in body:
                continue
            value = body[name]
            if not _number(value):
                raise _invalid(f"invalid request: {name} must be a number")
            if value < low or (high is not None and value > high):
                bound = f"between {low} and {high}" if high is not None else f"at least {low}"
                raise _invalid(f"invalid request: {name} must be {bound}, got {value}")
        max_tokens = body.get("max_tokens")
        if max_tokens is not None and (type(max_tokens) is not int or max_tokens < 1):
            raise _invalid("invalid request: max_tokens must be a positive integer")
        seed = body.get("seed")
        if seed is not None and type(seed) is not int:
            raise _invalid("invalid request: seed must be an integer")
        stops = body.get("stop_sequences")
        if stops is not None and (
            not isinstance(stops, list) or len(stops) > 5 or not all(isinstance(s, str) for s in stops)
        ):
            raise _invalid("invalid request: stop_sequences must be a list of at most 5 strings")

    @staticmethod
    def _validate_response_format(value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, dict) or value.get("type") not in ("text", "json_object"):
            kind = value.get("type") if isinstance(value, dict) else value
            raise _invalid(
                f"invalid request: response_format.type must be one of text, json_object, got '{kind}'"
            )
        extra = set(value) - {"type", "json_schema"}
        if extra:
            raise _invalid(f"invalid request: response_format has unknown field '{sorted(extra)[0]}'")
        if "json_schema" in value and (
            value["type"] != "json_object" or not isinstance(value["json_schema"], dict)
        ):
            raise _invalid(
                "invalid request: response_format.json_schema must be an object with type json_object"
            )

    def _validate_embed(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise _invalid("invalid request: the body must be a JSON object")
        for key, value in body.items():
            if key not in _EMBED_PARAMS:
                raise _invalid(f"invalid request: unknown field '{key}'")
            if value is None:
                raise _invalid(f"invalid request: '{key}' must not be null")
        if not isinstance(body.get("model"), str):
            raise _invalid("invalid request: model must be specified")
        texts = body.get("texts")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
            raise _invalid("invalid request: texts must be a non-empty list of non-empty strings")
        if len(texts) > 96:
            raise _invalid(f"invalid request: texts must contain at most 96 items, got {len(texts)}")
        if body.get("input_type") not in _INPUT_TYPES:
            raise _invalid(
                "invalid request: input_type is required for embed v3 and newer models and must be one of "
                + ", ".join(_INPUT_TYPES)
            )
        types = body.get("embedding_types", ["float"])
        if not isinstance(types, list) or not types or not all(t in _EMBEDDING_TYPES for t in types):
            raise _invalid(
                "invalid request: embedding_types must be a list of " + ", ".join(_EMBEDDING_TYPES)
            )
        dimension = body.get("output_dimension")
        if dimension is not None and dimension not in _OUTPUT_DIMENSIONS:
            raise _invalid(
                "invalid request: output_dimension must be one of "
                + ", ".join(str(d) for d in _OUTPUT_DIMENSIONS)
            )

    # ------------------------------------------------------------------------- wire format

    def new_request_id(self) -> str:
        return str(uuid.uuid4())

    def response_headers(self, request_id: str) -> dict[str, str]:
        return {"x-debug-trace-id": request_id.replace("-", "")}

    def error_body(self, status: int, request_id: str) -> dict[str, Any]:
        return {"id": request_id, "message": _ERRORS.get(status, "request failed")}

    def default_text(self, body: dict[str, Any]) -> str:
        for message in reversed(body["messages"]):
            if message["role"] == "user" and (text := text_of(message.get("content"))):
                return "fake: " + text
        return "fake: "

    def prompt_words(self, body: dict[str, Any]) -> int:
        return max(1, estimate_tokens(*(text_of(message.get("content")) for message in body["messages"])))

    @staticmethod
    def _usage(outcome: Outcome) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "billed_units": {
                "input_tokens": outcome.prompt_tokens,
                "output_tokens": outcome.completion_tokens,
            },
            "tokens": {
                "input_tokens": outcome.prompt_tokens + TEMPLATE_TOKENS,
                "output_tokens": outcome.completion_tokens,
            },
        }
        if outcome.cached_tokens:
            usage["cached_tokens"] = outcome.cached_tokens
        return usage

    @staticmethod
    def _finish_reason(outcome: Outcome) -> str:
        return outcome.finish_reason or ("TOOL_CALL" if outcome.calls else "COMPLETE")

    @staticmethod
    def _call_ids(outcome: Outcome) -> list[str]:
        # Cohere's ids are the function name plus a random suffix.
        return [name + "_" + "".join(secrets.choice(_ALNUM) for _ in range(12)) for name, _ in outcome.calls]

    def completion_body(self, body: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant"}
        if outcome.calls:
            # On a tool turn Cohere writes its text as the plan, not as content.
            if outcome.text:
                message["tool_plan"] = outcome.text
            message["tool_calls"] = [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                for call_id, (name, args) in zip(self._call_ids(outcome), outcome.calls, strict=True)
            ]
        else:
            message["content"] = [{"type": "text", "text": outcome.text or ""}]
        return {
            "id": str(uuid.uuid4()),
            "finish_reason": self._finish_reason(outcome),
            "message": message,
            "usage": self._usage(outcome),
        }

    def stream_events(self, body: dict[str, Any], outcome: Outcome) -> list[bytes]:
        reply_id = str(uuid.uuid4())

        def event(payload: dict[str, Any]) -> bytes:
            return (
                f"event: {payload['type']}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()
            )

        events = [
            event(
                {
                    "id": reply_id,
                    "type": "message-start",
                    "delta": {
                        "message": {
                            "role": "assistant",
                            "content": [],
                            "tool_plan": "",
                            "tool_calls": [],
                            "citations": [],
                        }
                    },
                }
            )
        ]
        if outcome.calls:
            for piece in split_text(outcome.text or ""):
                events.append(event({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": piece}}}))
            for index, (call_id, (name, args)) in enumerate(
                zip(self._call_ids(outcome), outcome.calls, strict=True)
            ):
                start = {"id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
                events.append(
                    event(
                        {
                            "type": "tool-call-start",
                            "index": index,
                            "delta": {"message": {"tool_calls": start}},
                        }
                    )
                )
                for fragment in split_fragments(json.dumps(args)):
                    delta = {"message": {"tool_calls": {"function": {"arguments": fragment}}}}
                    events.append(event({"type": "tool-call-delta", "index": index, "delta": delta}))
                events.append(event({"type": "tool-call-end", "index": index}))
        else:
            start_delta = {"message": {"content": {"type": "text", "text": ""}}}
            events.append(event({"type": "content-start", "index": 0, "delta": start_delta}))
            for piece in split_text(outcome.text or ""):
                delta = {"message": {"content": {"text": piece}}}
                events.append(event({"type": "content-delta", "index": 0, "delta": delta}))
            events.append(event({"type": "content-end", "index": 0}))
        end_delta = {"finish_reason": self._finish_reason(outcome), "usage": self._usage(outcome)}
        events.append(event({"id": reply_id, "type": "message-end", "delta": end_delta}))
        return events

    # ------------------------------------------------------------------------------- embed

    @staticmethod
    def embedding(text: str, dimensions: int) -> list[float]:
        """The fake's vector for one text: seeded by the text, so tests can recompute it."""
        rng = random.Random(hashlib.sha256(text.encode()).digest())
        return [round(rng.uniform(-1.0, 1.0), 6) for _ in range(dimensions)]

    def embed_body(self, body: dict[str, Any], request_id: str) -> dict[str, Any]:
        dimensions = body.get("output_dimension") or DEFAULT_EMBED_DIMENSIONS
        texts: list[str] = body["texts"]
        vectors = [self.embedding(text, dimensions) for text in texts]
        embeddings = {kind: vectors for kind in body.get("embedding_types", ["float"]) if kind == "float"}
        tokens = sum(max(1, estimate_tokens(text)) for text in texts)
        return {
            "id": request_id,
            "embeddings": embeddings,
            "texts": texts,
            "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}},
            "response_type": "embeddings_by_type",
        }
