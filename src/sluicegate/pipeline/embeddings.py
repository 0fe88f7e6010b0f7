"""The `/v1/embeddings` path: validate -> resolve (embeddings capability) -> fetch -> respond.

OpenAI-family adapters hand back the provider's reply untouched (`EmbeddingsResponse.content`),
whatever encoding the caller asked for. Every other adapter returns float vectors, and this module
renders OpenAI's list object from them: `base64` is the little-endian float32 bytes of each vector,
exactly what the OpenAI SDK decodes, which matters because the SDK asks for base64 by default.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson

from ..errors import InvalidRequestError
from ..providers.base import EMBEDDINGS
from ..routing.deployment import Deployment
from ..server.http import JSON_CT, Receive, Send, send_bytes
from ..server.runtime import Runtime
from ..types import EmbeddingsRequest, EmbeddingsResponse, Usage
from .context import RequestContext
from .dispatch import attempt_timeout, dispatch, fetch
from .validate import parse_json_object, require_model

ENCODINGS = ("float", "base64")


async def embeddings(rt: Runtime, ctx: RequestContext, raw: bytes, receive: Receive, send: Send) -> None:
    request = embeddings_request(parse_json_object(raw))

    async def attempt(deployment: Deployment, limit_s: float) -> EmbeddingsResponse:
        adapter = deployment.adapter
        upstream_request = adapter.build_embeddings_request(request)
        reply = await fetch(ctx, upstream_request, attempt_timeout(deployment, limit_s))
        return adapter.parse_embeddings_response(request, reply)

    response = await dispatch(
        rt, ctx, request.model, EMBEDDINGS, attempt, body=request.body, controls=request.controls
    )
    ctx.usage = response.usage
    content = response.content if response.content is not None else render(request, response)
    if ctx.principal is not None and ctx.principal.log_bodies:
        ctx.response_body = content
    headers = ctx.model_headers()
    headers.append(JSON_CT)
    ctx.response_started = True
    await send_bytes(send, 200, content, headers)


def _invalid(message: str, param: str, code: str = "invalid_value") -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code=code)


def _is_int(value: Any) -> bool:
    # bool is an int subclass: `true` is not a token id.
    return type(value) is int


def _check_input(value: Any) -> list[Any]:
    """`input` as a list of inputs (strings or token-id lists), or a 400 saying what is wrong."""
    if isinstance(value, str):
        if not value:
            raise _invalid("'input' must not be an empty string", "input")
        return [value]
    if not isinstance(value, list):
        raise _invalid(
            "invalid type for 'input': expected a string, an array of strings, an array of token ids "
            "or an array of token-id arrays",
            "input",
            "invalid_type",
        )
    if not value:
        raise _invalid("'input' must not be an empty array", "input")
    first = value[0]
    if isinstance(first, str):
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise _invalid(f"'input[{index}]' must be a string like the other inputs", f"input[{index}]")
            if not item:
                raise _invalid(f"'input[{index}]' must not be an empty string", f"input[{index}]")
        return value
    if _is_int(first):
        if not all(_is_int(token) and token >= 0 for token in value):
            raise _invalid("'input' token ids must all be non-negative integers", "input")
        return [value]
    if isinstance(first, list):
        for index, item in enumerate(value):
            if not isinstance(item, list) or not item:
                raise _invalid(f"'input[{index}]' must be a non-empty array of token ids", f"input[{index}]")
            if not all(_is_int(token) and token >= 0 for token in item):
                raise _invalid(
                    f"'input[{index}]' token ids must all be non-negative integers", f"input[{index}]"
                )
        return value
    raise _invalid(
        "invalid type for 'input[0]': expected a string, a token id or an array of token ids",
        "input[0]",
        "invalid_type",
    )


def embeddings_request(body: dict[str, Any]) -> EmbeddingsRequest:
    """Check an embeddings body (reference §1.7) and normalise what adapters need from it."""
    model = require_model(body)
    if "input" not in body:
        raise _invalid("missing required parameter: 'input'", "input", "missing_required_parameter")
    inputs = _check_input(body["input"])
    encoding = body.get("encoding_format")
    if encoding is not None and encoding not in ENCODINGS:
        raise _invalid(
            f"invalid value for 'encoding_format': expected 'float' or 'base64', got {encoding!r}",
            "encoding_format",
        )
    dimensions = body.get("dimensions")
    if dimensions is not None and (not _is_int(dimensions) or dimensions < 1):
        raise _invalid(
            f"invalid value for 'dimensions': expected a positive integer, got {dimensions!r}", "dimensions"
        )
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise _invalid("invalid type for 'user': expected a string", "user", "invalid_type")
    # Per-request gateway controls (SPEC §6) never reach the provider; the router reads them.
    controls = body.pop("sluicegate", None)
    return EmbeddingsRequest(
        body=body,
        model=model,
        inputs=inputs,
        encoding_format=encoding or "float",
        dimensions=dimensions,
        controls=controls,
    )


def encode_base64(vector: list[float]) -> str:
    """A vector as OpenAI's base64 form: packed little-endian float32 values."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def render(request: EmbeddingsRequest, response: EmbeddingsResponse) -> bytes:
    """OpenAI's embeddings list object for float vectors, named with the caller's model."""
    as_base64 = request.encoding_format == "base64"
    data = [
        {"object": "embedding", "index": index, "embedding": encode_base64(vector) if as_base64 else vector}
        for index, vector in enumerate(response.vectors)
    ]
    usage = response.usage or Usage()
    return orjson.dumps(
        {
            "object": "list",
            "data": data,
            "model": request.model,
            "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.total_tokens},
        }
    )
