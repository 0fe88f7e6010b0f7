"""The legacy `/v1/completions` path: forwarded to OpenAI-family servers, translated to chat elsewhere.

When every deployment of the model's group speaks OpenAI and has the legacy endpoint, the call
goes to its `completions` URL exactly like a chat call: body forwarded with the provider's model
id, usage asked for on streams (and hidden again unless the caller asked), reply and stream
passed through byte for byte. Otherwise the prompt becomes one user message and the call runs
through `run_chat` with an egress that turns the chat result back into `text_completion`
objects and stream chunks. Legacy parameters with no chat equivalent (`echo`, `best_of`,
`suffix`, `logprobs`) get a 400 naming them on that path, and so do token-id prompts and
several prompts in one call, which a chat call cannot express.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from ..errors import GatewayError, InvalidRequestError, ModelNotFoundError, render_openai
from ..providers._openai_compat import OpenAICompatibleBase
from ..providers.base import CHAT, DONE_FRAME, STREAM, sse_frame
from ..routing.deployment import Deployment
from ..routing.router import LEGACY_PREFIX, ModelGroup
from ..server.http import Receive, Send
from ..server.runtime import Runtime
from ..types import ChatRequest, ChatResponse, UpstreamRequest
from .chat import complete_chat, run_chat, stream_chat
from .context import RequestContext
from .egress import OPENAI, StreamEncoder
from .validate import chat_request, check_types, checked_request, parse_json_object, require_model, wrong_type

_NUMBER = (int, float)
# parameter -> (accepted types, description for the error message); reference §1.6.
_TYPED: dict[str, tuple[tuple[type, ...], str]] = {
    "temperature": (_NUMBER, "a number"),
    "top_p": (_NUMBER, "a number"),
    "frequency_penalty": (_NUMBER, "a number"),
    "presence_penalty": (_NUMBER, "a number"),
    "max_tokens": ((int,), "an integer"),
    "n": ((int,), "an integer"),
    "best_of": ((int,), "an integer"),
    "seed": ((int,), "an integer"),
    # An integer 0-5 here, unlike the boolean of Chat Completions.
    "logprobs": ((int,), "an integer"),
    "echo": ((bool,), "a boolean"),
    "suffix": ((str,), "a string"),
    "stop": ((str, list), "a string or an array of strings"),
    "stream_options": ((dict,), "an object"),
    "logit_bias": ((dict,), "an object"),
    "user": ((str,), "a string"),
}
# Capabilities of deployments that serve `/v1/completions` themselves (routing/router.py `supports`).
LEGACY_CHAT = LEGACY_PREFIX + CHAT
LEGACY_STREAM = LEGACY_PREFIX + STREAM
# Chat finish reasons a text completion has no word for (no tools are offered on this surface).
_FINISH = {"stop": "stop", "length": "length", "content_filter": "content_filter"}


async def completions(rt: Runtime, ctx: RequestContext, raw: bytes, receive: Receive, send: Send) -> None:
    body = parse_json_object(raw)
    request = completion_request(body)
    group = rt.groups.get(request.model)
    if group is None:
        raise ModelNotFoundError(f"the model '{request.model}' does not exist", param="model")
    if _native(group):
        # Retries and fallbacks stay on deployments that serve the legacy endpoint themselves.
        if request.stream:
            await stream_chat(
                rt, ctx, request, receive, send, OPENAI, capability=LEGACY_STREAM, build=_legacy(request)
            )
        else:
            await complete_chat(
                rt, ctx, request, send, OPENAI, capability=LEGACY_CHAT, build=_legacy(request)
            )
        return
    assert ctx.principal is not None
    ctx.principal.check_model(request.model)  # a refused model is a 403 before any 400 about parameters
    chat = chat_request(to_chat_body(body, group))
    chat.controls = request.controls
    await run_chat(rt, ctx, chat, receive, send, TEXT_COMPLETION)


def _legacy(request: ChatRequest) -> Callable[[Deployment], UpstreamRequest]:
    def build(deployment: Deployment) -> UpstreamRequest:
        adapter = deployment.adapter
        assert isinstance(adapter, OpenAICompatibleBase)
        return adapter.build_completions_request(request)

    return build


def _native(group: ModelGroup) -> bool:
    """Whether every deployment of the group serves the legacy endpoint itself."""
    return all(
        isinstance(d.adapter, OpenAICompatibleBase) and d.adapter.legacy_completions
        for d in group.deployments
    )


def _is_token(value: Any) -> bool:
    return type(value) is int and value >= 0  # bool is an int subclass, and not a token id


def _check_prompt(prompt: Any) -> None:
    if isinstance(prompt, str):
        return
    expected = "a string, an array of strings, an array of token ids or an array of token-id arrays"
    if not isinstance(prompt, list):
        raise wrong_type("prompt", expected)
    if not prompt:
        raise InvalidRequestError("'prompt' must not be an empty array", param="prompt", code="invalid_value")
    first = prompt[0]
    if isinstance(first, str):
        ok = all(isinstance(item, str) for item in prompt)
    elif isinstance(first, list):
        ok = all(isinstance(item, list) and item and all(_is_token(t) for t in item) for item in prompt)
    else:
        ok = all(_is_token(item) for item in prompt)
    if not ok:
        raise wrong_type("prompt", expected)


def completion_request(body: dict[str, Any]) -> ChatRequest:
    """Check a legacy completions body (reference §1.6); the result is what the forwarding path sends."""
    model = require_model(body)
    if "prompt" not in body:
        raise InvalidRequestError(
            "missing required parameter: 'prompt'", param="prompt", code="missing_required_parameter"
        )
    _check_prompt(body["prompt"])
    return checked_request(body, model, check_types(body, _TYPED))


def _no_equivalent(body: dict[str, Any]) -> list[str]:
    """Legacy parameters set to something a chat call cannot do (neutral values ask for nothing)."""
    n = body.get("n") or 1
    present = []
    if body.get("echo"):
        present.append("echo")
    if body.get("best_of") not in (None, 1, n):
        present.append("best_of")
    if body.get("suffix"):
        present.append("suffix")
    if body.get("logprobs") is not None:
        present.append("logprobs")
    return present


def to_chat_body(body: dict[str, Any], group: ModelGroup) -> dict[str, Any]:
    """The Chat Completions body for a legacy call to a chat-only model; `body` is not modified."""
    model = body["model"]
    provider = group.owned_by
    prompt = body["prompt"]
    if isinstance(prompt, list):
        if not all(isinstance(item, str) for item in prompt):
            raise InvalidRequestError(
                f"model '{model}' (provider {provider}) takes text prompts only; token-id prompts need an "
                "OpenAI-compatible backend with the legacy completions endpoint",
                param="prompt",
                code="unsupported_parameter",
            )
        if len(prompt) != 1:
            raise InvalidRequestError(
                f"model '{model}' (provider {provider}) takes one prompt per call on /v1/completions; "
                f"send the {len(prompt)} prompts as separate calls",
                param="prompt",
                code="unsupported_parameter",
            )
        prompt = prompt[0]
    refused = _no_equivalent(body)
    if refused and not all(d.entry.drop_params for d in group.deployments):
        name = refused[0]
        raise InvalidRequestError(
            f"parameter '{name}' has no Chat Completions equivalent, so model '{model}' (provider "
            f"{provider}) cannot take it on /v1/completions; remove it or set drop_params: true",
            param=name,
            code="unsupported_parameter",
        )
    out = {k: v for k, v in body.items() if k not in ("prompt", "echo", "best_of", "suffix", "logprobs")}
    out["messages"] = [{"role": "user", "content": prompt}]
    return out


def _completion_id(chat_id: Any) -> Any:
    if isinstance(chat_id, str) and chat_id.startswith("chatcmpl-"):
        return "cmpl-" + chat_id[len("chatcmpl-") :]
    return chat_id


def _envelope(chat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": _completion_id(chat.get("id")),
        "object": "text_completion",
        "created": chat.get("created") or int(time.time()),
        "model": chat.get("model"),
    }
    if chat.get("system_fingerprint"):
        out["system_fingerprint"] = chat["system_fingerprint"]
    return out


def _choice(index: Any, text: Any, finish_reason: Any) -> dict[str, Any]:
    finish = None if finish_reason is None else _FINISH.get(finish_reason, "stop")
    return {
        "text": text if isinstance(text, str) else "",
        "index": index,
        "logprobs": None,
        "finish_reason": finish,
    }


def text_completion(chat: dict[str, Any]) -> dict[str, Any]:
    """A `chat.completion` object as the `text_completion` object a legacy caller expects."""
    out = _envelope(chat)
    choices = []
    for position, choice in enumerate(chat.get("choices") or []):
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else None
        choices.append(_choice(choice.get("index", position), text, choice.get("finish_reason") or "stop"))
    out["choices"] = choices
    if isinstance(chat.get("usage"), dict):
        out["usage"] = chat["usage"]
    return out


def text_completion_chunk(chunk: dict[str, Any]) -> dict[str, Any] | None:
    """A `chat.completion.chunk` as a `text_completion` chunk, or None when it carries nothing for one."""
    choices = []
    for position, choice in enumerate(chunk.get("choices") or []):
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        text = delta.get("content") if isinstance(delta, dict) else None
        finish = choice.get("finish_reason")
        if isinstance(text, str) or finish is not None:
            choices.append(_choice(choice.get("index", position), text, finish))
    usage = chunk.get("usage")
    if not choices and not isinstance(usage, dict):
        return None
    out = _envelope(chunk)
    out["choices"] = choices
    if isinstance(usage, dict):
        out["usage"] = usage
    return out


class _TextCompletionStream:
    """Chat SSE frames in, `text_completion` SSE frames out; `[DONE]` and errors as OpenAI sends them."""

    __slots__ = ()

    def encode(self, frames: list[bytes]) -> bytes:
        out: list[bytes] = []
        for frame in frames:
            if frame == DONE_FRAME or not frame.startswith(b"data: "):
                out.append(frame)
                continue
            chunk = orjson.loads(frame[6:])
            converted = text_completion_chunk(chunk) if isinstance(chunk, dict) else None
            if converted is not None:
                out.append(sse_frame(orjson.dumps(converted)))
        return b"".join(out)

    def error(self, error: GatewayError) -> bytes:
        # SPEC §6: one `data: {"error": ...}` event and no `[DONE]`.
        return sse_frame(orjson.dumps(error.to_openai()))


class TextCompletionEgress:
    """Presents the chat pipeline's OpenAI chat results as legacy text completions."""

    __slots__ = ()
    _stream = _TextCompletionStream()

    def render_error(self, error: GatewayError) -> bytes:
        return render_openai(error)

    def complete(self, request: ChatRequest, response: ChatResponse) -> bytes:
        return orjson.dumps(text_completion(orjson.loads(response.content)))

    def stream(self, request: ChatRequest) -> StreamEncoder:
        return self._stream


TEXT_COMPLETION = TextCompletionEgress()
