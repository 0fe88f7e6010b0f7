"""Gemini and Vertex AI through the shared conformance gateway: embeddings, and one OAuth token per worker.

Uses the session's gateway process and fakes (tests/providers/conftest.py), so the official OpenAI
SDK, the gateway's pipeline and the wire-exact fakes are all real.
"""

from __future__ import annotations

import hashlib

import openai
import pytest

from tests.fakes import Reply
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.server import FakeProviderServer

USER = [{"role": "user", "content": "Hi"}]


def expected_vector(text: str, dimensions: int) -> list[float]:
    """What the fakes return for `text` (see fake_gemini._vector), computed independently here."""
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % 32] - 128) / 128, 6) for i in range(dimensions)]


@pytest.mark.parametrize("model", ["conf-gemini", "conf-vertex-gemini"])
def test_embeddings_come_back_in_order_with_dimensions_and_usage(client: openai.OpenAI, model: str) -> None:
    """/v1/embeddings on Gemini (batchEmbedContents) and Vertex (predict) returns each input's vector."""
    reply = client.embeddings.create(model=model, input=["red apple", "green pear tree"], dimensions=5)
    assert [item.index for item in reply.data] == [0, 1]
    for item, text in zip(reply.data, ["red apple", "green pear tree"], strict=True):
        assert item.embedding == pytest.approx(expected_vector(text, 5), abs=1e-6)
    assert reply.usage.prompt_tokens > 0


def test_vertex_reuses_one_token_across_calls(
    client: openai.OpenAI, fakes: dict[str, FakeProviderServer]
) -> None:
    """Several Vertex calls from one gateway worker are all signed with the single token it fetched."""
    fake = fakes["vertex-gemini"]
    assert isinstance(fake, FakeGemini)
    fake.enqueue(Reply("a"), Reply("b"), Reply("c"))
    answers = [
        client.chat.completions.create(model="conf-vertex-gemini", messages=USER).choices[0].message.content
        for _ in range(3)
    ]
    assert answers == ["a", "b", "c"]
    assert len(fake.oauth.issued) == 1
    bearers = {r.headers.get("authorization") for r in fake.requests if r.path != "/token"}
    assert bearers == {f"Bearer {fake.oauth.issued[0].token}"}
