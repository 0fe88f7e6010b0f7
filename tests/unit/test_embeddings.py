"""Embeddings without sockets: request validation, OpenAI's base64 encoding, the rendered list object,
the OpenAI-family passthrough (usage read from the tail) and the mock's vectors."""

from __future__ import annotations

import array
import base64
import math
import struct
from typing import Any

import orjson
import pytest

from sluicegate.config.schema import ModelEntry
from sluicegate.errors import InvalidRequestError, UpstreamProtocolError, UpstreamStatusError
from sluicegate.pipeline.embeddings import embeddings_request, encode_base64, render
from sluicegate.providers.base import EMBEDDINGS
from sluicegate.providers.mock import MockAdapter, embeddings_reply, mock_embedding
from sluicegate.providers.openai import OpenAIAdapter
from sluicegate.providers.openai_compatible import OpenAICompatibleAdapter
from sluicegate.types import EmbeddingsRequest, EmbeddingsResponse, UpstreamReply, Usage


def sdk_decode(encoded: str) -> list[float]:
    """What the OpenAI SDK does with a base64 embedding when numpy is absent."""
    return array.array("f", base64.b64decode(encoded)).tolist()


def float32(values: list[float]) -> list[float]:
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


def openai_adapter() -> OpenAIAdapter:
    return OpenAIAdapter(
        ModelEntry(name="emb", provider="openai", model="text-embedding-3-small", api_key="sk-x")
    )


# ------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("given", "inputs"),
    [
        ("hello", ["hello"]),
        (["a", "b"], ["a", "b"]),
        ([1, 2, 3], [[1, 2, 3]]),
        ([[1, 2], [3]], [[1, 2], [3]]),
    ],
)
def test_input_forms_are_normalised_to_a_list(given: Any, inputs: list[Any]) -> None:
    """Every accepted `input` form becomes a list with one entry per vector to produce."""
    request = embeddings_request({"model": "m", "input": given})
    assert request.inputs == inputs
    assert request.encoding_format == "float" and request.dimensions is None


def test_encoding_and_dimensions_are_read_and_controls_stripped() -> None:
    """`encoding_format` and `dimensions` are read; the `sluicegate` controls object never goes upstream."""
    body = {"model": "m", "input": "x", "encoding_format": "base64", "dimensions": 256, "sluicegate": {}}
    request = embeddings_request(body)
    assert (request.encoding_format, request.dimensions) == ("base64", 256)
    assert "sluicegate" not in request.body


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": 3, "input": "x"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": None}, "input"),
        ({"model": "m", "input": ""}, "input"),
        ({"model": "m", "input": []}, "input"),
        ({"model": "m", "input": ["a", ""]}, "input[1]"),
        ({"model": "m", "input": ["a", ["b"]]}, "input[1]"),
        ({"model": "m", "input": [1, "2"]}, "input"),
        ({"model": "m", "input": [True, False]}, "input[0]"),
        ({"model": "m", "input": [[1], [2.5]]}, "input[1]"),
        ({"model": "m", "input": [{"text": "x"}]}, "input[0]"),
        ({"model": "m", "input": "x", "encoding_format": "binary"}, "encoding_format"),
        ({"model": "m", "input": "x", "dimensions": -1}, "dimensions"),
        ({"model": "m", "input": "x", "dimensions": 1.5}, "dimensions"),
        ({"model": "m", "input": "x", "user": ["u"]}, "user"),
    ],
)
def test_bad_bodies_name_the_parameter(body: dict[str, Any], param: str) -> None:
    """Each malformed embeddings body is a 400 whose `param` points at the culprit."""
    with pytest.raises(InvalidRequestError) as info:
        embeddings_request(body)
    assert info.value.http_status == 400 and info.value.param == param


# ------------------------------------------------------------------------- base64 and render


def test_base64_is_little_endian_float32() -> None:
    """1.0 encodes as the little-endian float32 bytes 00 00 80 3f, as OpenAI sends it."""
    assert encode_base64([1.0]) == base64.b64encode(b"\x00\x00\x80\x3f").decode()


def test_base64_decodes_with_the_sdk_to_the_float32_values() -> None:
    """The SDK's own decoding of our base64 gives back each value rounded to float32."""
    vector = [0.1, -0.25, 3.0e-8, 12345.678]
    assert sdk_decode(encode_base64(vector)) == float32(vector)


def test_render_float_list_object_with_the_callers_model() -> None:
    """Float vectors become OpenAI's list object, indexed in order, named with the caller's model."""
    request = EmbeddingsRequest(body={}, model="my-embedder", inputs=["a", "b"])
    response = EmbeddingsResponse(vectors=[[0.5, 0.25], [1.0, 0.0]], usage=Usage(prompt_tokens=4))
    assert orjson.loads(render(request, response)) == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [0.5, 0.25]},
            {"object": "embedding", "index": 1, "embedding": [1.0, 0.0]},
        ],
        "model": "my-embedder",
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
    }


def test_render_base64_when_asked_and_zero_usage_when_unknown() -> None:
    """With base64 asked, each vector is the SDK-decodable string; missing usage renders as zeros."""
    request = EmbeddingsRequest(body={}, model="m", inputs=["a"], encoding_format="base64")
    rendered = orjson.loads(render(request, EmbeddingsResponse(vectors=[[0.5, -2.0]])))
    assert sdk_decode(rendered["data"][0]["embedding"]) == [0.5, -2.0]
    assert rendered["usage"] == {"prompt_tokens": 0, "total_tokens": 0}


# ---------------------------------------------------------------- OpenAI-family passthrough


def test_openai_family_declares_embeddings() -> None:
    """OpenAI, OpenAI-compatible servers and the mock can be asked for embeddings."""
    for cls in (OpenAIAdapter, OpenAICompatibleAdapter, MockAdapter):
        assert EMBEDDINGS in cls.capabilities


def test_request_goes_to_the_embeddings_endpoint_with_the_provider_model() -> None:
    """The caller's body is forwarded to `<base>/embeddings` with only `model` replaced."""
    body = {"model": "emb", "input": ["a"], "encoding_format": "base64", "dimensions": 8}
    request = embeddings_request(dict(body))
    upstream = openai_adapter().build_embeddings_request(request)
    assert upstream.url == "https://api.openai.com/v1/embeddings"
    assert orjson.loads(upstream.body) == {**body, "model": "text-embedding-3-small"}
    assert upstream.headers["authorization"] == "Bearer sk-x"
    assert request.body["model"] == "emb"  # not mutated: a retry reuses it


def test_reply_passes_through_untouched_with_usage_from_the_tail() -> None:
    """A normal reply is handed on as the same bytes, and its usage is read for billing."""
    raw = (
        b'{"object":"list","data":[{"object":"embedding","index":0,"embedding":"AACAPw=="}],'
        b'"model":"text-embedding-3-small","usage":{"prompt_tokens":7,"total_tokens":7}}'
    )
    request = EmbeddingsRequest(body={}, model="emb", inputs=["a"], encoding_format="base64")
    response = openai_adapter().parse_embeddings_response(request, UpstreamReply(200, {}, raw))
    assert response.content is raw
    assert response.usage is not None and response.usage.prompt_tokens == 7


def test_usage_with_nested_details_falls_back_to_a_full_parse() -> None:
    """A usage object the tail reader cannot take is still read, and the reply still passes through."""
    raw = orjson.dumps(
        {
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}],
            "usage": {"prompt_tokens": 5, "total_tokens": 5, "prompt_tokens_details": {"cached_tokens": 0}},
        }
    )
    request = EmbeddingsRequest(body={}, model="emb", inputs=["a"])
    response = openai_adapter().parse_embeddings_response(request, UpstreamReply(200, {}, raw))
    assert response.content == raw and response.usage is not None and response.usage.prompt_tokens == 5


def test_floats_where_base64_was_asked_are_handed_over_for_encoding() -> None:
    """A server ignoring `encoding_format: base64` yields float vectors, in index order, for the pipeline."""
    raw = orjson.dumps(
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": 1, "embedding": [0.2, 0.3]},
                {"object": "embedding", "index": 0, "embedding": [0.0, 0.1]},
            ],
            "usage": {"prompt_tokens": 2, "total_tokens": 2},
        }
    )
    request = EmbeddingsRequest(body={}, model="emb", inputs=["a", "b"], encoding_format="base64")
    response = openai_adapter().parse_embeddings_response(request, UpstreamReply(200, {}, raw))
    assert response.content is None
    assert response.vectors == [[0.0, 0.1], [0.2, 0.3]]
    assert response.usage is not None and response.usage.prompt_tokens == 2


def test_error_inside_a_200_is_raised() -> None:
    """An error object sent with status 200 becomes an upstream error, not a broken embeddings reply."""
    raw = b'{"error":{"message":"model overloaded","type":"server_error","param":null,"code":null}}'
    request = EmbeddingsRequest(body={}, model="emb", inputs=["a"])
    with pytest.raises(UpstreamStatusError) as info:
        openai_adapter().parse_embeddings_response(request, UpstreamReply(200, {}, raw))
    assert info.value.message == "model overloaded"


@pytest.mark.parametrize("raw", [b"<html>bad gateway</html>", b'{"object":"list"}', b"[1,2]"])
def test_reply_that_is_not_an_embeddings_list_is_a_protocol_error(raw: bytes) -> None:
    """HTML, a list without data, or a JSON array is reported as a bad provider reply."""
    request = EmbeddingsRequest(body={}, model="emb", inputs=["a"])
    with pytest.raises(UpstreamProtocolError):
        openai_adapter().parse_embeddings_response(request, UpstreamReply(200, {}, raw))


# --------------------------------------------------------------------------------- the mock


def test_mock_vector_is_deterministic_unit_float32() -> None:
    """The mock's vector depends only on the input, has the asked size, unit length and float32 values."""
    vector = mock_embedding("The cat sat", 32)
    assert vector == mock_embedding("the CAT, sat!", 32)  # words, case-folded
    assert vector != mock_embedding("the dog sat", 32)
    assert len(vector) == 32 and math.isclose(math.fsum(x * x for x in vector), 1.0, rel_tol=1e-6)
    assert vector == float32(vector)
    assert mock_embedding([1, 2, 3], 16) != mock_embedding([1, 2, 4], 16)


def test_mock_reply_speaks_openais_format_in_both_encodings() -> None:
    """The mock answers floats or base64 that decodes to the same floats, with token usage."""
    body: dict[str, Any] = {"model": "demo", "input": ["alpha beta", "gamma"], "dimensions": 12}
    as_float = embeddings_reply(body)
    as_base64 = embeddings_reply({**body, "encoding_format": "base64"})
    assert [d["index"] for d in as_float["data"]] == [0, 1]
    assert [sdk_decode(d["embedding"]) for d in as_base64["data"]] == [
        d["embedding"] for d in as_float["data"]
    ]
    assert as_float["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    tokens = embeddings_reply({"model": "demo", "input": [5, 6, 7]})
    assert len(tokens["data"]) == 1 and len(tokens["data"][0]["embedding"]) == 1536
    assert tokens["usage"]["prompt_tokens"] == 3
