"""`/v1/embeddings` through the gateway with the official OpenAI SDK: passthrough to an OpenAI-shaped
upstream (floats and the SDK's default base64), the mock's deterministic vectors, usage, and 400s
for bad input and for models without embeddings."""

from __future__ import annotations

import math
from typing import Any

import openai
import orjson
import pytest

from tests.conftest import MASTER_KEY, GatewayProcess, raw_request
from tests.fakes import Error, FakeAnthropic, FakeOpenAI
from tests.fakes.fake_openai import DEFAULT_EMBEDDING_DIMENSIONS


def vectors(reply: Any) -> list[list[float]]:
    return [item.embedding for item in sorted(reply.data, key=lambda item: item.index)]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (
        math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    )


def test_float_embeddings_pass_through(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    """Float vectors from the OpenAI upstream reach the caller unchanged, with its usage."""
    reply = client.embeddings.create(model="gpt-fake", input="hello brave world", encoding_format="float")
    assert vectors(reply) == [FakeOpenAI.embedding("hello brave world", DEFAULT_EMBEDDING_DIMENSIONS)]
    assert reply.usage.prompt_tokens == 3 and reply.usage.total_tokens == 3
    sent = fake_openai.requests[-1]
    assert sent.path == "/v1/embeddings"
    assert sent.json == {"model": "gpt-4o-mini", "input": "hello brave world", "encoding_format": "float"}
    assert sent.headers["authorization"] == "Bearer sk-fake-openai-upstream"


def test_sdk_default_base64_decodes_to_the_same_vectors(
    client: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    """The SDK's default base64 request is forwarded as base64 and decodes to the float vectors exactly."""
    as_base64 = client.embeddings.create(model="gpt-fake", input=["alpha", "beta gamma"])
    assert fake_openai.requests[-1].json["encoding_format"] == "base64"
    as_float = client.embeddings.create(
        model="gpt-fake", input=["alpha", "beta gamma"], encoding_format="float"
    )
    assert vectors(as_base64) == vectors(as_float)
    assert len(vectors(as_base64)) == 2 and vectors(as_base64)[0] != vectors(as_base64)[1]


def test_list_input_keeps_order(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    """Several inputs come back as one vector each, in input order."""
    inputs = ["first text", "second", "third one here"]
    reply = client.embeddings.create(model="gpt-fake", input=inputs, encoding_format="float")
    assert [item.index for item in reply.data] == [0, 1, 2]
    assert vectors(reply) == [FakeOpenAI.embedding(text, DEFAULT_EMBEDDING_DIMENSIONS) for text in inputs]
    assert reply.usage.prompt_tokens == 6


@pytest.mark.parametrize("tokens", [[101, 2023, 102], [[101, 7], [3]]])
def test_token_input_is_forwarded(client: openai.OpenAI, fake_openai: FakeOpenAI, tokens: list[Any]) -> None:
    """Token-id inputs (one array, or an array of arrays) reach the upstream as sent."""
    reply = client.embeddings.create(model="gpt-fake", input=tokens, encoding_format="float")
    assert fake_openai.requests[-1].json["input"] == tokens
    expected = [tokens] if isinstance(tokens[0], int) else tokens
    assert vectors(reply) == [FakeOpenAI.embedding(item, DEFAULT_EMBEDDING_DIMENSIONS) for item in expected]


def test_dimensions_are_forwarded(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    """`dimensions` reaches the upstream, and the vectors have that length."""
    reply = client.embeddings.create(model="gpt-fake", input="short", dimensions=8)
    assert fake_openai.requests[-1].json["dimensions"] == 8
    assert len(vectors(reply)[0]) == 8


def test_gateway_headers_on_embeddings(client: openai.OpenAI) -> None:
    """An embeddings call carries the gateway's model-call headers."""
    raw = client.embeddings.with_raw_response.create(model="gpt-fake", input="hi")
    assert raw.headers["x-sluicegate-deployment"] == "openai/gpt-4o-mini"
    assert raw.headers["x-sluicegate-attempts"] == "1"
    assert raw.parse().data[0].embedding


def test_upstream_rate_limit_keeps_its_class(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    """A provider 429 on embeddings reaches the SDK as RateLimitError with its retry-after."""
    fake_openai.enqueue(Error(429, headers={"retry-after": "3"}))
    with pytest.raises(openai.RateLimitError) as info:
        client.embeddings.create(model="gpt-fake", input="hi")
    assert info.value.response.headers["retry-after"] == "3"


def test_model_without_embeddings_is_400(client: openai.OpenAI, fake_anthropic: FakeAnthropic) -> None:
    """A model whose provider has no embeddings gets a 400 naming the operation, and no upstream call."""
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="claude-fake", input="hi")
    assert "embeddings" in info.value.message and "claude-fake" in info.value.message
    assert info.value.code == "unsupported_operation" and info.value.param == "model"
    assert fake_anthropic.requests == []


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    """An unknown model on embeddings is NotFoundError, as on chat."""
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="text-embedding-9", input="hi")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "gpt-fake", "input": ""}, "input"),
        ({"model": "gpt-fake", "input": []}, "input"),
        ({"model": "gpt-fake", "input": ["ok", ""]}, "input[1]"),
        ({"model": "gpt-fake", "input": ["ok", 3]}, "input[1]"),
        ({"model": "gpt-fake", "input": [[1, 2], []]}, "input[1]"),
        ({"model": "gpt-fake", "input": [1, -2]}, "input"),
        ({"model": "gpt-fake", "input": {"text": "x"}}, "input"),
        ({"model": "gpt-fake"}, "input"),
        ({"input": "x"}, "model"),
        ({"model": "gpt-fake", "input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"model": "gpt-fake", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "gpt-fake", "input": "x", "dimensions": True}, "dimensions"),
        ({"model": "gpt-fake", "input": "x", "user": 7}, "user"),
    ],
)
def test_bad_input_is_400_naming_the_parameter(
    gateway: GatewayProcess, fake_openai: FakeOpenAI, body: dict[str, Any], param: str
) -> None:
    """Malformed embeddings bodies get a 400 naming the parameter, before any upstream call."""
    status, _, raw = raw_request(
        gateway.url, "POST", "/v1/embeddings", orjson.dumps(body), {"authorization": f"Bearer {MASTER_KEY}"}
    )
    assert status == 400
    assert orjson.loads(raw)["error"]["param"] == param
    assert fake_openai.requests == []


def test_mock_embeddings_are_deterministic_and_honour_dimensions(client: openai.OpenAI) -> None:
    """The mock's vectors depend only on the input, are unit length, and take `dimensions`."""
    first = vectors(client.embeddings.create(model="demo", input=["the cat sat", "the cat sat"]))
    assert first[0] == first[1] and len(first[0]) == 1536
    assert math.isclose(sum(x * x for x in first[0]), 1.0, rel_tol=1e-5)
    again = vectors(client.embeddings.create(model="demo", input="the cat sat", encoding_format="float"))
    assert again[0] == first[0]  # float and the SDK's base64 decode to the same float32 values
    short = client.embeddings.create(model="demo", input="the cat sat", dimensions=64)
    assert len(short.data[0].embedding) == 64
    assert short.usage.prompt_tokens > 0 and short.model


def test_mock_embeddings_reflect_shared_words(client: openai.OpenAI) -> None:
    """Texts sharing words are closer in the mock's space than unrelated texts."""
    a, b, c = vectors(
        client.embeddings.create(
            model="demo", input=["the quick brown fox", "a quick brown dog", "quarterly tax filing deadline"]
        )
    )
    assert cosine(a, b) > 0.3 > abs(cosine(a, c))
