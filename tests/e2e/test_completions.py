"""Legacy `/v1/completions` through the gateway with the official OpenAI SDK: forwarded to an
OpenAI-shaped upstream, translated to chat for the mock and for Claude, streamed and not, with
400s for what a chat model cannot do."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from tests.conftest import MASTER_KEY, GatewayProcess, raw_request
from tests.fakes import Error, FakeAnthropic, FakeOpenAI, Reply

PROMPT = "Say something about Paris"


def stream_completion(client: openai.OpenAI, model: str, **kwargs: Any) -> tuple[str, list[Any]]:
    chunks = list(client.completions.create(model=model, prompt=PROMPT, stream=True, **kwargs))
    return "".join(c.choices[0].text for c in chunks if c.choices), chunks


def test_openai_completion_is_forwarded(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    """A non-streamed call reaches the upstream's /v1/completions with its model id and comes back as sent."""
    fake_openai.enqueue(Reply("Paris is lovely.", prompt_tokens=5, completion_tokens=3))
    reply = client.completions.create(model="gpt-fake", prompt=PROMPT, max_tokens=20, temperature=0.5)
    assert reply.object == "text_completion" and reply.id.startswith("cmpl-")
    assert reply.choices[0].text == "Paris is lovely." and reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (5, 3)
    sent = fake_openai.requests[-1]
    assert sent.path == "/v1/completions"
    assert sent.json == {"model": "gpt-4o-mini", "prompt": PROMPT, "max_tokens": 20, "temperature": 0.5}


def test_openai_completion_keeps_legacy_only_parameters(
    client: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    """Forwarded calls keep several prompts, `echo` and integer `logprobs`, which only the legacy API has."""
    reply = client.completions.create(
        model="gpt-fake", prompt=["one", "two"], echo=True, logprobs=1, max_tokens=5
    )
    assert [c.text for c in reply.choices] == ["onefake: one", "twofake: two"]
    assert fake_openai.requests[-1].json["logprobs"] == 1


def test_openai_completion_stream_hides_usage_unless_asked(
    client: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    """A forwarded stream asks upstream for usage; the caller sees the usage chunk only if they asked too."""
    fake_openai.enqueue(Reply("Paris is the capital of France."))
    text, chunks = stream_completion(client, "gpt-fake")
    assert text == "Paris is the capital of France."
    assert all(c.object == "text_completion" and c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert fake_openai.requests[-1].json["stream_options"] == {"include_usage": True}
    fake_openai.enqueue(Reply("Paris.", prompt_tokens=4, completion_tokens=1))
    _, chunks = stream_completion(client, "gpt-fake", stream_options={"include_usage": True})
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 1


def test_openai_completion_error_keeps_its_class(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    """A provider 400 on a forwarded completion reaches the SDK as BadRequestError with its message."""
    fake_openai.enqueue(
        Error(
            400,
            body={
                "error": {
                    "message": "bad prompt",
                    "type": "invalid_request_error",
                    "param": "prompt",
                    "code": None,
                }
            },
        )
    )
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="gpt-fake", prompt=PROMPT)
    assert info.value.message.endswith("bad prompt") and info.value.param == "prompt"


def test_mock_completion_is_translated(client: openai.OpenAI) -> None:
    """The chat-only mock answers a legacy call as a text_completion with finish reason and usage."""
    reply = client.completions.create(model="demo", prompt=PROMPT)
    assert reply.object == "text_completion"
    assert reply.choices[0].text == f"echo: {PROMPT}" and reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.completion_tokens == 5
    short = client.completions.create(model="demo", prompt=[PROMPT], max_tokens=2)
    assert short.choices[0].text == "echo: Say " and short.choices[0].finish_reason == "length"


def test_mock_completion_stream_is_translated(client: openai.OpenAI) -> None:
    """A translated stream is text_completion chunks ending with a finish reason, and usage when asked."""
    text, chunks = stream_completion(client, "demo", stream_options={"include_usage": True})
    assert text == f"echo: {PROMPT}"
    assert all(c.object == "text_completion" for c in chunks)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5
    text, chunks = stream_completion(client, "demo")
    assert text == f"echo: {PROMPT}" and all(c.usage is None for c in chunks)


def test_claude_completion_is_translated(client: openai.OpenAI, fake_anthropic: FakeAnthropic) -> None:
    """A legacy call to Claude becomes one user message, and Claude's stop reason and usage come back."""
    fake_anthropic.enqueue(
        Reply("Paris is", finish_reason="max_tokens", prompt_tokens=7, completion_tokens=2)
    )
    reply = client.completions.create(model="claude-fake", prompt=PROMPT, max_tokens=2, stop=["\n"])
    assert reply.choices[0].text == "Paris is" and reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (7, 2)
    sent = fake_anthropic.requests[-1].json
    assert sent["messages"] == [{"role": "user", "content": PROMPT}]
    assert sent["max_tokens"] == 2 and sent["stop_sequences"] == ["\n"]


def test_claude_completion_stream_is_translated(client: openai.OpenAI, fake_anthropic: FakeAnthropic) -> None:
    """A streamed legacy call to Claude arrives as text_completion chunks with usage when asked."""
    fake_anthropic.enqueue(Reply("Paris is the capital.", prompt_tokens=6, completion_tokens=4))
    text, chunks = stream_completion(client, "claude-fake", stream_options={"include_usage": True})
    assert text == "Paris is the capital."
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert fake_anthropic.requests[-1].json["stream"] is True


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"echo": True}, "echo"),
        ({"best_of": 3}, "best_of"),
        ({"suffix": " and that is all."}, "suffix"),
        ({"logprobs": 2}, "logprobs"),
        ({"prompt": ["one", "two"]}, "prompt"),
        ({"prompt": [101, 102]}, "prompt"),
    ],
)
def test_translated_backend_refuses_what_chat_cannot_do(
    client: openai.OpenAI, fake_anthropic: FakeAnthropic, extra: dict[str, Any], param: str
) -> None:
    """Legacy-only parameters, several prompts and token prompts get a 400 naming them on chat-only models."""
    kwargs: dict[str, Any] = {"prompt": PROMPT, **extra}
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="claude-fake", **kwargs)
    assert info.value.param == param and "claude-fake" in info.value.message
    assert fake_anthropic.requests == []


def test_neutral_legacy_values_are_accepted_when_translated(client: openai.OpenAI) -> None:
    """`echo: false`, `best_of: 1` and an empty `suffix` ask for nothing, so a chat-only model takes them."""
    reply = client.completions.create(model="demo", prompt=PROMPT, echo=False, best_of=1, suffix="")
    assert reply.choices[0].text == f"echo: {PROMPT}"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "gpt-fake"}, "prompt"),
        ({"prompt": "x"}, "model"),
        ({"model": "gpt-fake", "prompt": 5}, "prompt"),
        ({"model": "gpt-fake", "prompt": []}, "prompt"),
        ({"model": "gpt-fake", "prompt": ["a", 1]}, "prompt"),
        ({"model": "gpt-fake", "prompt": "x", "logprobs": True}, "logprobs"),
        ({"model": "gpt-fake", "prompt": "x", "stream": "yes"}, "stream"),
        ({"model": "gpt-fake", "prompt": "x", "max_tokens": "16"}, "max_tokens"),
    ],
)
def test_bad_input_is_400_naming_the_parameter(
    gateway: GatewayProcess, fake_openai: FakeOpenAI, body: dict[str, Any], param: str
) -> None:
    """Malformed legacy bodies get a 400 from the gateway naming the parameter, before any upstream call."""
    status, _, raw = raw_request(
        gateway.url, "POST", "/v1/completions", orjson.dumps(body), {"authorization": f"Bearer {MASTER_KEY}"}
    )
    assert status == 400
    assert orjson.loads(raw)["error"]["param"] == param
    assert fake_openai.requests == []
