"""A fake Mistral La Plateforme chat API speaking the wire format of reference §6 (Mistral row).

Serves ``POST /v1/chat/completions``, ``POST /v1/embeddings`` (``output_dimension``, not
``dimensions``; text inputs only) and ``GET /v1/models``. Mistral validates strictly, and so does
this fake: any key it does not define — top level or inside a message (OpenAI's ``seed``,
``max_completion_tokens``, ``stream_options``, ``logit_bias``, a user ``name``, an assistant
``refusal``...) — is a 422 ``extra_forbidden`` in pydantic's ``{"detail": [...]}`` shape; the
``developer`` role does not exist; tool-call ids must be exactly 9 alphanumerics (400 "Tool call id
was ... but must be a-z, A-Z, 0-9, with a length of 9."); every tool call needs its answer; the
conversation must end on a user or tool message. Replies are Mistral's: tool calls without
``type``, whole (not fragmented) in one stream delta with 9-character ids, and stream usage on the
final chunk without being asked. Errors use ``{"object": "error", ...}`` or, from the API gateway
(401, 429), a bare ``{"message": ..., "request_id": ...}``.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from typing import Any

from aiohttp import web

from .behaviours import Outcome, split_text
from .fake_openai import FakeOpenAI
from .server import ApiError, unix_time

_ALNUM = string.ascii_letters + string.digits
_VALID_ID = re.compile(r"[A-Za-z0-9]{9}")

# mistralai client-python ChatCompletionRequest fields.
_KNOWN_PARAMS = frozenset(
    {
        "model", "messages", "temperature", "top_p", "max_tokens", "stream", "stop", "random_seed",
        "metadata", "response_format", "tools", "tool_choice", "presence_penalty", "frequency_penalty", "n",
        "prediction", "parallel_tool_calls", "reasoning_effort", "prompt_mode", "guardrails",
        "prompt_cache_key", "safe_prompt",
    }
)  # fmt: skip
_MESSAGE_KEYS = {
    "system": frozenset({"role", "content"}),
    "user": frozenset({"role", "content"}),
    "assistant": frozenset({"role", "content", "tool_calls", "prefix"}),
    "tool": frozenset({"role", "content", "tool_call_id", "name"}),
}
_TOOL_CHOICES = ("auto", "none", "any", "required")
# mistralai client-python EmbeddingRequest fields; mistral-embed's vector size.
_EMBEDDING_PARAMS = frozenset(
    {"model", "input", "metadata", "output_dimension", "output_dtype", "encoding_format"}
)
EMBEDDING_DIMENSIONS = 1024

_ERRORS: dict[int, dict[str, Any]] = {
    400: {
        "object": "error",
        "message": "Invalid request",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    },
    403: {"object": "error", "message": "Forbidden", "type": "forbidden", "param": None, "code": None},
    404: {
        "object": "error",
        "message": "Invalid model: mistral-nonexistent",
        "type": "invalid_model",
        "param": None,
        "code": "1500",
    },
    500: {
        "object": "error",
        "message": "Internal server error",
        "type": "internal_server_error",
        "param": None,
        "code": None,
    },
    503: {
        "object": "error",
        "message": "Service unavailable.",
        "type": "internal_server_error",
        "param": None,
        "code": "1000",
    },
}


def _gateway_error(status: int, message: str) -> dict[str, Any]:
    """What Mistral's API gateway (in front of the model servers) answers: no object/type/code."""
    return {"message": message, "request_id": secrets.token_hex(16)}


def _mistral_error(status: int, message: str, type_: str = "invalid_request_error") -> ApiError:
    return ApiError(
        status, {"object": "error", "message": message, "type": type_, "param": None, "code": None}
    )


def _unprocessable(*items: dict[str, Any]) -> ApiError:
    """Pydantic's validation failure, as Mistral returns it (HTTP 422)."""
    return ApiError(
        422,
        {
            "object": "error",
            "message": {"detail": list(items)},
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        },
    )


def _extra(loc: list[Any], value: Any) -> ApiError:
    return _unprocessable(
        {
            "type": "extra_forbidden",
            "loc": ["body", *loc],
            "msg": "Extra inputs are not permitted",
            "input": value,
        }
    )


def _invalid(loc: list[Any], msg: str, value: Any, type_: str = "value_error") -> ApiError:
    return _unprocessable({"type": type_, "loc": ["body", *loc], "msg": msg, "input": value})


def mistral_id() -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(9))


class FakeMistral(FakeOpenAI):
    """Fake ``https://api.mistral.ai/v1``."""

    base_path = "/v1"
    default_models = ("mistral-small-latest", "mistral-large-latest")

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/chat/completions", self._chat),
            web.post("/v1/embeddings", self._embeddings),
            web.get("/v1/models", self._list_models),
            web.route("*", "/{tail:.*}", self._mistral_not_found),
        ]

    async def _mistral_not_found(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        return self.api_error_response(ApiError(404, {"detail": "Not Found"}), self.new_request_id())

    @staticmethod
    def _model(model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": 1727740800, "owned_by": "mistralai"}

    # ------------------------------------------------------------------- auth and validation

    def _authenticate(self, request: web.Request) -> None:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if (
            scheme.lower() != "bearer"
            or not key.strip()
            or (self.api_key is not None and key != self.api_key)
        ):
            raise ApiError(401, _gateway_error(401, "Unauthorized"))

    def _validate(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise _invalid(
                [],
                "Input should be a valid dictionary or object to extract fields from",
                body,
                "model_attributes_type",
            )
        for key, value in body.items():
            if key not in _KNOWN_PARAMS:
                raise _extra([key], value)
        if not isinstance(body.get("model"), str):
            raise _invalid(["model"], "Field required", body, "missing")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _invalid(
                ["messages"],
                "List should have at least 1 item after validation, not 0",
                messages,
                "too_short",
            )
        for index, message in enumerate(messages):
            self._validate_message(index, message)
        self._validate_pairing(messages)
        last = messages[-1]
        if last["role"] not in ("user", "tool") and not (last["role"] == "assistant" and last.get("prefix")):
            raise _mistral_error(
                400,
                "Expected last role User or Tool (or Assistant with prefix True) for serving but got "
                + last["role"],
            )
        for name in ("max_tokens", "random_seed", "n"):
            value = body.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise _invalid([name], "Input should be a valid integer", value, "int_type")
        stream = body.get("stream")
        if stream is not None and not isinstance(stream, bool):
            raise _invalid(["stream"], "Input should be a valid boolean", stream, "bool_type")
        choice = body.get("tool_choice")
        if choice is not None and choice not in _TOOL_CHOICES:
            function = choice.get("function") if isinstance(choice, dict) else None
            if not (
                isinstance(choice, dict) and choice.get("type") == "function" and isinstance(function, dict)
            ):
                raise _invalid(
                    ["tool_choice"], "Input should be 'auto', 'none', 'any' or 'required'", choice, "enum"
                )
        self._validate_tools(body.get("tools"))

    def _validate_message(self, index: int, message: Any) -> None:
        if not isinstance(message, dict):
            raise _invalid(["messages", index], "Input should be a valid dictionary", message, "dict_type")
        role = message.get("role")
        allowed = _MESSAGE_KEYS.get(role) if isinstance(role, str) else None
        if allowed is None:
            raise _invalid(
                ["messages", index],
                f"Input tag '{role}' found using 'role' does not match any of the expected tags: "
                "'assistant', 'system', 'tool', 'user'",
                message,
                "union_tag_invalid",
            )
        for key, value in message.items():
            if key not in allowed:
                raise _extra(["messages", index, role, key], value)
        content = message.get("content")
        if role != "assistant" and content is None:
            raise _invalid(["messages", index, role, "content"], "Field required", message, "missing")
        if (
            role == "assistant"
            and not content
            and not message.get("tool_calls")
            and not message.get("prefix")
        ):
            raise _mistral_error(
                400, "Assistant message must have either content or tool_calls, but not none."
            )
        if role == "tool":
            self._check_id(message.get("tool_call_id"))
        for call_index, call in enumerate(message.get("tool_calls") or []):
            where = ["messages", index, role, "tool_calls", call_index]
            if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
                raise _invalid([*where, "function"], "Field required", call, "missing")
            self._check_id(call.get("id"))
            arguments = call["function"].get("arguments")
            if not isinstance(arguments, str | dict):
                raise _invalid(
                    [*where, "function", "arguments"],
                    "Input should be a valid string",
                    arguments,
                    "string_type",
                )

    @staticmethod
    def _check_id(call_id: Any) -> None:
        if not isinstance(call_id, str) or not _VALID_ID.fullmatch(call_id):
            raise _mistral_error(
                400, f"Tool call id was {call_id} but must be a-z, A-Z, 0-9, with a length of 9."
            )

    @staticmethod
    def _validate_pairing(messages: list[dict[str, Any]]) -> None:
        """Every tool call is answered, by id, before the conversation moves on."""
        open_ids: list[str] = []
        for message in messages:
            if message["role"] == "tool":
                if message.get("tool_call_id") not in open_ids:
                    raise _mistral_error(400, "Not the same number of function calls and responses")
                open_ids.remove(message["tool_call_id"])
                continue
            if open_ids:
                raise _mistral_error(400, "Not the same number of function calls and responses")
            if message["role"] == "assistant":
                open_ids = [call["id"] for call in message.get("tool_calls") or []]

    @staticmethod
    def _validate_tools(tools: Any) -> None:
        if tools is None:
            return
        if not isinstance(tools, list):
            raise _invalid(["tools"], "Input should be a valid list", tools, "list_type")
        for index, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("function"), dict):
                raise _invalid(["tools", index, "function"], "Field required", tool, "missing")
            if not isinstance(tool["function"].get("name"), str):
                raise _invalid(["tools", index, "function", "name"], "Field required", tool, "missing")

    def _validate_embeddings(self, body: Any) -> list[Any]:
        if not isinstance(body, dict):
            raise _invalid([], "Input should be a valid dictionary", body, "dict_type")
        for key, value in body.items():
            if key not in _EMBEDDING_PARAMS:
                raise _extra([key], value)
        if not isinstance(body.get("model"), str):
            raise _invalid(["model"], "Field required", body, "missing")
        raw = body.get("input")
        inputs = [raw] if isinstance(raw, str) else raw
        if not isinstance(inputs, list) or not inputs or not all(isinstance(item, str) for item in inputs):
            raise _invalid(["input"], "Input should be a valid string", raw, "string_type")
        dimensions = body.get("output_dimension")
        if dimensions is not None and (type(dimensions) is not int or dimensions < 1):
            raise _invalid(["output_dimension"], "Input should be greater than 0", dimensions, "greater_than")
        return inputs

    def embeddings_body(self, body: dict[str, Any], inputs: list[Any]) -> dict[str, Any]:
        reply = super().embeddings_body(
            {**body, "dimensions": body.get("output_dimension") or EMBEDDING_DIMENSIONS}, inputs
        )
        tokens = reply["usage"]["prompt_tokens"]
        return {
            "id": secrets.token_hex(16),
            "object": "list",
            "data": reply["data"],
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0},
        }

    # ------------------------------------------------------------------------- wire format

    def new_request_id(self) -> str:
        return secrets.token_hex(16)

    def response_headers(self, request_id: str) -> dict[str, str]:
        return {"mistral-correlation-id": request_id, "x-kong-request-id": request_id}

    def error_body(self, status: int, request_id: str) -> dict[str, Any]:
        if status == 401:
            return _gateway_error(status, "Unauthorized")
        if status == 429:
            return _gateway_error(status, "Requests rate limit exceeded")
        return dict(
            _ERRORS.get(status)
            or {
                "object": "error",
                "message": "Request failed",
                "type": "api_error",
                "param": None,
                "code": None,
            }
        )

    @staticmethod
    def _usage(outcome: Outcome) -> dict[str, Any]:
        return {
            "prompt_tokens": outcome.prompt_tokens,
            "completion_tokens": outcome.completion_tokens,
            "total_tokens": outcome.prompt_tokens + outcome.completion_tokens,
        }

    @staticmethod
    def _calls(outcome: Outcome) -> list[dict[str, Any]]:
        # Mistral's tool calls: 9-character ids, `index`, and no `type`.
        return [
            {"id": mistral_id(), "function": {"name": name, "arguments": json.dumps(args)}, "index": index}
            for index, (name, args) in enumerate(outcome.calls)
        ]

    def completion_body(self, body: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
        return {
            "id": secrets.token_hex(16),
            "object": "chat.completion",
            "model": body["model"],
            "usage": self._usage(outcome),
            "created": unix_time(),
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "tool_calls": self._calls(outcome) or None,
                        "content": outcome.text or "",
                    },
                    "finish_reason": self._finish_reason(outcome),
                }
            ],
        }

    def stream_events(self, body: dict[str, Any], outcome: Outcome) -> list[bytes]:
        envelope = {
            "id": secrets.token_hex(16),
            "object": "chat.completion.chunk",
            "created": unix_time(),
            "model": body["model"],
        }

        def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
            payload = {**envelope, "choices": [choice], **extra}
            return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"

        events = [chunk({"role": "assistant", "content": ""})]
        events.extend(chunk({"content": piece}) for piece in split_text(outcome.text or ""))
        calls = self._calls(outcome)
        if calls:
            events.append(chunk({"tool_calls": calls}))
        # Usage arrives on the closing chunk, whether or not it was asked for.
        events.append(chunk({"content": ""}, self._finish_reason(outcome), usage=self._usage(outcome)))
        events.append(b"data: [DONE]\n\n")
        return events
