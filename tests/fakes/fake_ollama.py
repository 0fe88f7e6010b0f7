"""A fake Ollama server speaking the native API of reference §6.1.

Serves ``POST /api/chat`` (one JSON object, or an ``application/x-ndjson`` stream of
``{"message": ..., "done": false}`` lines ending with a ``done: true`` line that carries
``done_reason`` and the counts) and ``POST /api/embed``; anything else gets Go's plain-text
``404 page not found``. Like real Ollama it streams when ``stream`` is absent, gives tool calls no
ids and takes their arguments as objects, and answers errors as ``{"error": "<string>"}``.

Real Ollama silently ignores fields it does not know, which is exactly how a sloppy translator
loses ``max_tokens`` or a tool result's link to its call without anyone noticing. This fake is
stricter on purpose and rejects with a 400: unknown top-level, message and option keys (OpenAI's
``max_tokens``, ``tool_call_id``, ``top_p`` outside ``options``...), injected nulls, list content,
string-encoded tool arguments, images that are not bare base64, and tool results whose
``tool_name`` names no earlier tool call.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import random
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .behaviours import Behaviour, Error, Outcome, estimate_tokens, split_text
from .server import ApiError, FakeProviderServer

_CHAT_PARAMS = frozenset({"model", "messages", "stream", "format", "options", "keep_alive", "think", "tools"})
_EMBED_PARAMS = frozenset({"model", "input", "truncate", "options", "keep_alive", "dimensions"})
_MESSAGE_KEYS = frozenset({"role", "content", "images", "tool_calls", "tool_name", "thinking"})
# option -> accepted JSON types (Ollama's Options struct; ints may arrive as floats from JSON).
_NUMBER = (int, float)
_OPTIONS: dict[str, tuple[type, ...]] = {
    "num_keep": (int,), "seed": (int,), "num_predict": (int,), "top_k": (int,), "top_p": _NUMBER,
    "min_p": _NUMBER, "typical_p": _NUMBER, "repeat_last_n": (int,), "temperature": _NUMBER,
    "repeat_penalty": _NUMBER, "presence_penalty": _NUMBER, "frequency_penalty": _NUMBER, "stop": (list,),
    "num_ctx": (int,), "num_batch": (int,), "num_gpu": (int,), "main_gpu": (int,), "use_mmap": (bool,),
    "num_thread": (int,),
}  # fmt: skip
DEFAULT_EMBED_DIMENSIONS = 8  # small on purpose: tests compare whole vectors

_ERRORS: dict[int, str] = {
    400: "invalid request",
    401: "unauthorized",
    403: "forbidden",
    404: 'model "llama3.2" not found, try pulling it first',
    429: "too many requests",
    500: "llama runner process has terminated: exit status 2",
    503: "server busy, please try again.  maximum pending requests exceeded",
}


def _invalid(message: str, status: int = 400) -> ApiError:
    return ApiError(status, {"error": message})


def _timestamp() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _canonical(model: str) -> str:
    return model if ":" in model else model + ":latest"


class FakeOllama(FakeProviderServer):
    """Fake ``http://127.0.0.1:11434``; no key unless ``api_key`` is given (a proxy or ollama.com)."""

    base_path = ""
    stream_content_type = "application/x-ndjson"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        default: Behaviour | None = None,
        models: tuple[str, ...] = ("llama3.2", "llava", "nomic-embed-text"),
    ) -> None:
        super().__init__(api_key=api_key, default=default)
        self.models = {_canonical(model) for model in models}

    def wants_stream(self, request: web.Request, body: dict[str, Any]) -> bool:
        return body.get("stream", True) is not False  # Ollama streams unless told not to

    # ---------------------------------------------------------------------------- routes

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/chat", self._chat),
            web.post("/api/embed", self._embed),
            web.route("*", "/{tail:.*}", self._not_found),
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

    async def _embed(self, request: web.Request) -> web.StreamResponse:
        _, body = await self.record(request)
        request_id = self.new_request_id()
        try:
            self._authenticate(request)
            inputs = self._validate_embed(body)
        except ApiError as error:
            return self.api_error_response(error, request_id)
        behaviour = self.next_behaviour()
        if isinstance(behaviour, Error):
            return self.error_reply(behaviour, request_id)
        return self.json_response(self.embed_body(body, inputs), request_id=request_id)

    async def _not_found(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        return web.Response(status=404, text="404 page not found", content_type="text/plain")

    # ------------------------------------------------------------------- auth and validation

    def _authenticate(self, request: web.Request) -> None:
        if self.api_key is None:
            return  # plain Ollama takes no key and ignores any Authorization header
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token.strip() != self.api_key:
            raise _invalid("unauthorized", 401)

    def _check_model(self, body: dict[str, Any]) -> None:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _invalid("model is required")
        if _canonical(model) not in self.models:
            raise _invalid(f'model "{model}" not found, try pulling it first', 404)

    def _validate(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise _invalid("json: cannot unmarshal into Go value of type api.ChatRequest")
        for key, value in body.items():
            if key not in _CHAT_PARAMS:
                raise _invalid(f"fake ollama: unknown field {key!r} (real Ollama would silently ignore it)")
            if value is None:
                raise _invalid(f"fake ollama: {key!r} is null (real Ollama would silently ignore it)")
        if "stream" in body and not isinstance(body["stream"], bool):
            raise _invalid("json: cannot unmarshal into Go struct field ChatRequest.stream of type bool")
        self._check_model(body)
        self._validate_messages(body.get("messages"))
        self._validate_options(body.get("options"))
        self._validate_tools(body.get("tools"))
        fmt = body.get("format")
        if fmt is not None and fmt != "json" and not isinstance(fmt, dict):
            raise _invalid(f'invalid format: {json.dumps(fmt)}; expected "json" or a valid JSON schema')

    def _validate_messages(self, messages: Any) -> None:
        if not isinstance(messages, list):
            raise _invalid(
                "json: cannot unmarshal into Go struct field ChatRequest.messages of type []api.Message"
            )
        called: set[str] = set()
        for index, message in enumerate(messages):
            where = f"messages[{index}]"
            if not isinstance(message, dict):
                raise _invalid(f"json: cannot unmarshal into Go struct field {where} of type api.Message")
            for key in message:
                if key not in _MESSAGE_KEYS:
                    raise _invalid(f"fake ollama: {where} has unknown field {key!r} (real Ollama ignores it)")
            role = message.get("role")
            if role not in ("system", "user", "assistant", "tool"):
                raise _invalid(f"invalid role: {role!r}")
            if "content" in message and not isinstance(message["content"], str):
                raise _invalid(
                    "json: cannot unmarshal array into Go struct field Message.messages.content "
                    "of type string"
                )
            for image in message.get("images") or []:
                try:
                    base64.b64decode(image, validate=True)
                except (binascii.Error, TypeError, ValueError) as exc:
                    raise _invalid("illegal base64 data at input byte 4") from exc
            if role == "assistant":
                called.update(self._validate_tool_calls(where, message.get("tool_calls")))
            if role == "tool" and "tool_name" in message and message["tool_name"] not in called:
                raise _invalid(
                    f"fake ollama: {where}.tool_name {message['tool_name']!r} names no earlier tool call"
                )

    @staticmethod
    def _validate_tool_calls(where: str, calls: Any) -> list[str]:
        if calls is None:
            return []
        if not isinstance(calls, list):
            raise _invalid("json: cannot unmarshal into Go struct field Message.messages.tool_calls")
        names = []
        for call_index, call in enumerate(calls):
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise _invalid(f"fake ollama: {where}.tool_calls[{call_index}].function.name is required")
            if not isinstance(function.get("arguments", {}), dict):
                raise _invalid(
                    "json: cannot unmarshal string into Go struct field ToolCallFunction.messages.tool_calls."
                    "function.arguments of type api.ToolCallFunctionArguments"
                )
            names.append(function["name"])
        return names

    @staticmethod
    def _validate_options(options: Any) -> None:
        if options is None:
            return
        if not isinstance(options, dict):
            raise _invalid("json: cannot unmarshal into Go struct field ChatRequest.options")
        for key, value in options.items():
            types = _OPTIONS.get(key)
            if types is None:
                raise _invalid(
                    f"fake ollama: invalid option provided: {key!r} (real Ollama only logs a warning)"
                )
            if isinstance(value, bool) != (bool in types) or not isinstance(value, types):
                raise _invalid(f'option "{key}" must be of type {types[0].__name__}')
            if key == "stop" and not all(isinstance(stop, str) for stop in value):
                raise _invalid('option "stop" must be of an array of strings')

    @staticmethod
    def _validate_tools(tools: Any) -> None:
        if tools is None:
            return
        if not isinstance(tools, list):
            raise _invalid("json: cannot unmarshal into Go struct field ChatRequest.tools of type api.Tools")
        for index, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if tool.get("type") != "function" or not isinstance(function, dict):
                raise _invalid(f"fake ollama: tools[{index}] must be a function tool")
            if not isinstance(function.get("name"), str):
                raise _invalid(f"fake ollama: tools[{index}].function.name is required")

    def _validate_embed(self, body: Any) -> list[str]:
        if not isinstance(body, dict):
            raise _invalid("json: cannot unmarshal into Go value of type api.EmbedRequest")
        for key in body:
            if key not in _EMBED_PARAMS:
                raise _invalid(f"fake ollama: unknown field {key!r} (real Ollama would silently ignore it)")
        self._check_model(body)
        raw = body.get("input")
        inputs = [raw] if isinstance(raw, str) else raw
        if not isinstance(inputs, list) or not inputs or not all(isinstance(text, str) for text in inputs):
            raise _invalid("invalid input type")
        dimensions = body.get("dimensions")
        if dimensions is not None and (type(dimensions) is not int or dimensions < 1):
            raise _invalid("dimensions must be a positive integer")
        return inputs

    # ------------------------------------------------------------------------- wire format

    def new_request_id(self) -> str:
        return ""  # Ollama has no request ids

    def response_headers(self, request_id: str) -> dict[str, str]:
        return {}

    def error_body(self, status: int, request_id: str) -> dict[str, Any]:
        return {"error": _ERRORS.get(status, "error")}

    def default_text(self, body: dict[str, Any]) -> str:
        for message in reversed(body["messages"]):
            if message["role"] == "user" and message.get("content"):
                return "fake: " + message["content"]
        return "fake: "

    def prompt_words(self, body: dict[str, Any]) -> int:
        return max(1, estimate_tokens(*(message.get("content", "") for message in body["messages"])))

    @staticmethod
    def _metrics(outcome: Outcome, done_reason: str) -> dict[str, Any]:
        return {
            "done_reason": done_reason,
            "done": True,
            "total_duration": 2_140_000_000,
            "load_duration": 18_000_000,
            "prompt_eval_count": outcome.prompt_tokens,
            "prompt_eval_duration": 120_000_000,
            "eval_count": outcome.completion_tokens,
            "eval_duration": 1_900_000_000,
        }

    @staticmethod
    def _tool_calls(outcome: Outcome) -> list[dict[str, Any]]:
        return [{"function": {"name": name, "arguments": args}} for name, args in outcome.calls]

    def completion_body(self, body: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": outcome.text or ""}
        if outcome.calls:
            message["tool_calls"] = self._tool_calls(outcome)
        return {
            "model": body["model"],
            "created_at": _timestamp(),
            "message": message,
            **self._metrics(outcome, outcome.finish_reason or "stop"),
        }

    def stream_events(self, body: dict[str, Any], outcome: Outcome) -> list[bytes]:
        def line(payload: dict[str, Any]) -> bytes:
            return json.dumps(payload, separators=(",", ":")).encode() + b"\n"

        def chunk(message: dict[str, Any]) -> bytes:
            return line(
                {
                    "model": body["model"],
                    "created_at": _timestamp(),
                    "message": {"role": "assistant", **message},
                    "done": False,
                }
            )

        events = [chunk({"content": piece}) for piece in split_text(outcome.text or "")]
        # Each parsed tool call arrives whole, in its own line, with object arguments.
        events.extend(chunk({"content": "", "tool_calls": [call]}) for call in self._tool_calls(outcome))
        final = {
            "model": body["model"],
            "created_at": _timestamp(),
            "message": {"role": "assistant", "content": ""},
            **self._metrics(outcome, outcome.finish_reason or "stop"),
        }
        events.append(line(final))
        return events

    # ------------------------------------------------------------------------------- embed

    @staticmethod
    def embedding(text: str, dimensions: int) -> list[float]:
        """The fake's vector for one text: seeded by the text, so tests can recompute it."""
        rng = random.Random(hashlib.sha256(text.encode()).digest())
        return [round(rng.uniform(-1.0, 1.0), 6) for _ in range(dimensions)]

    def embed_body(self, body: dict[str, Any], inputs: list[str]) -> dict[str, Any]:
        dimensions = body.get("dimensions") or DEFAULT_EMBED_DIMENSIONS
        began = time.perf_counter_ns()
        vectors = [self.embedding(text, dimensions) for text in inputs]
        return {
            "model": body["model"],
            "embeddings": vectors,
            "total_duration": time.perf_counter_ns() - began + 14_000_000,
            "load_duration": 9_000_000,
            "prompt_eval_count": sum(max(1, estimate_tokens(text)) for text in inputs),
        }
