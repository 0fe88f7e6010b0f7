"""The official OpenAI SDK works through the gateway for openai, openai-compatible, anthropic and mock
models: replies, streams, tools, usage and the gateway's own headers."""

from __future__ import annotations

import json

import openai
import pytest

from tests.conftest import GatewayProcess
from tests.fakes import FakeAnthropic, FakeOpenAI, Reply, ToolCalls

USER = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def stream_text(client: openai.OpenAI, model: str, **kwargs: object) -> tuple[str, list[object]]:
    chunks = list(client.chat.completions.create(model=model, messages=USER, stream=True, **kwargs))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


def test_demo_model_answers_with_echo(client: openai.OpenAI) -> None:
    """The built-in mock `demo` model answers `echo: <prompt>` with usage."""
    reply = client.chat.completions.create(model="demo", messages=USER)
    assert reply.choices[0].message.content == "echo: What is the capital of France?"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.completion_tokens > 0


@pytest.mark.parametrize("model", ["gpt-fake", "vllm-fake"])
def test_openai_shaped_upstream_non_stream(
    client: openai.OpenAI, fake_openai: FakeOpenAI, model: str
) -> None:
    """A non-streamed call reaches the OpenAI-shaped upstream with the provider's model id and key."""
    fake_openai.enqueue(Reply("Paris.", prompt_tokens=11, completion_tokens=2))
    reply = client.chat.completions.create(model=model, messages=USER, temperature=0.3)
    assert reply.choices[0].message.content == "Paris."
    assert reply.usage is not None and (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (11, 2)
    sent = fake_openai.requests[-1]
    assert sent.json["model"] in ("gpt-4o-mini", "meta-llama/Llama-3.1-8B-Instruct")
    assert sent.json["temperature"] == 0.3
    assert "stream_options" not in sent.json


def test_openai_stream_hides_usage_unless_asked(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    """The gateway asks upstream for usage; the caller sees the usage chunk only if they asked too."""
    fake_openai.enqueue(Reply("The capital is Paris."))
    text, chunks = stream_text(client, "gpt-fake")
    assert text == "The capital is Paris."
    assert fake_openai.requests[-1].json["stream_options"] == {"include_usage": True}
    assert all(c.choices for c in chunks)  # no usage-only chunk
    fake_openai.enqueue(Reply("Paris.", prompt_tokens=9, completion_tokens=2))
    _, chunks = stream_text(client, "gpt-fake", stream_options={"include_usage": True})
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 2


def test_anthropic_non_stream_is_translated(client: openai.OpenAI, fake_anthropic: FakeAnthropic) -> None:
    """An OpenAI call to a Claude model is translated both ways, including system and max_tokens."""
    fake_anthropic.enqueue(Reply("Paris.", prompt_tokens=20, completion_tokens=3, cached_tokens=5))
    reply = client.chat.completions.create(
        model="claude-fake", messages=[{"role": "system", "content": "Be brief."}, *USER]
    )
    assert reply.choices[0].message.content == "Paris."
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == 25 and reply.usage.completion_tokens == 3
    sent = fake_anthropic.requests[-1]
    assert sent.json["system"] == "Be brief."
    assert sent.json["max_tokens"] > 0
    assert sent.headers["x-api-key"] == "sk-ant-fake-upstream"
    assert sent.headers["anthropic-version"] == "2023-06-01"


def test_anthropic_stream_is_translated(client: openai.OpenAI, fake_anthropic: FakeAnthropic) -> None:
    """Anthropic's event stream arrives as OpenAI chunks with the right finish reason and usage."""
    fake_anthropic.enqueue(Reply("The capital of France is Paris.", completion_tokens=7))
    text, chunks = stream_text(client, "claude-fake", stream_options={"include_usage": True})
    assert text == "The capital of France is Paris."
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7


@pytest.mark.parametrize("model", ["gpt-fake", "claude-fake"])
def test_tool_calls_non_stream(
    client: openai.OpenAI, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, model: str
) -> None:
    """Parallel tool calls come back as OpenAI tool_calls with JSON-string arguments."""
    fake = fake_openai if model == "gpt-fake" else fake_anthropic
    fake.enqueue(ToolCalls([("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Lyon"})]))
    reply = client.chat.completions.create(
        model=model, messages=USER, tools=[WEATHER_TOOL], tool_choice="auto"
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Lyon"}),
    ]
    assert len({c.id for c in calls}) == 2


@pytest.mark.parametrize("model", ["gpt-fake", "claude-fake"])
def test_tool_calls_streamed_reassemble(
    client: openai.OpenAI, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, model: str
) -> None:
    """Streamed tool-call deltas carry the right index so the SDK's accumulator rebuilds both calls."""
    fake = fake_openai if model == "gpt-fake" else fake_anthropic
    fake.enqueue(
        ToolCalls([("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Lyon"})], text="Checking.")
    )
    with client.chat.completions.stream(model=model, messages=USER, tools=[WEATHER_TOOL]) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [json.loads(c.function.arguments)["city"] for c in calls] == ["Paris", "Lyon"]
    assert final.choices[0].finish_reason == "tool_calls"


def test_tool_result_round_trip_to_anthropic(client: openai.OpenAI, fake_anthropic: FakeAnthropic) -> None:
    """A second turn with the assistant's tool calls and tool results is valid for Anthropic's API."""
    fake_anthropic.enqueue(Reply("It is 21C in Paris and 19C in Lyon."))
    messages = [
        *USER,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Lyon"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "21C"},
        {"role": "tool", "tool_call_id": "call_b", "content": "19C"},
    ]
    reply = client.chat.completions.create(model="claude-fake", messages=messages, tools=[WEATHER_TOOL])
    assert reply.choices[0].message.content == "It is 21C in Paris and 19C in Lyon."
    sent = fake_anthropic.requests[-1].json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert [b["tool_use_id"] for b in sent[2]["content"]] == ["call_a", "call_b"]


def test_gateway_headers(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    """Model calls carry request id (echoed), deployment, attempts, cache and overhead headers."""
    fake_openai.enqueue(Reply("ok"))
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-fake", messages=USER, extra_headers={"x-request-id": "trace-abc-123"}
    )
    assert raw.headers["x-request-id"] == "trace-abc-123"
    assert raw.headers["x-sluicegate-deployment"] == "openai/gpt-4o-mini"
    assert raw.headers["x-sluicegate-attempts"] == "1"
    assert raw.headers["x-sluicegate-cache"] == "off"
    assert 0 <= float(raw.headers["x-sluicegate-overhead-ms"]) < 100
    generated = client.chat.completions.with_raw_response.create(model="demo", messages=USER)
    assert generated.headers["x-request-id"].startswith("sg-")


def test_models_list_and_get(client: openai.OpenAI) -> None:
    """`/v1/models` lists every configured group; `/v1/models/{id}` returns one or 404."""
    ids = {m.id for m in client.models.list()}
    assert {"gpt-fake", "claude-fake", "demo", "vllm-fake"} <= ids
    assert client.models.retrieve("claude-fake").owned_by == "anthropic"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_x_api_key_header_authenticates(gateway: GatewayProcess) -> None:
    """Anthropic-style `x-api-key` is accepted as well as `Authorization: Bearer`."""
    from tests.conftest import MASTER_KEY, raw_request

    status, _, _ = raw_request(
        gateway.url,
        "POST",
        "/v1/chat/completions",
        b'{"model":"demo","messages":[{"role":"user","content":"hi"}]}',
        {"x-api-key": MASTER_KEY},
    )
    assert status == 200
