"""The Anthropic Messages surface over every provider adapter: the official `anthropic` SDK, through the
shared conformance gateway, against each provider's wire-exact fake (one case per tests/providers/cases/).

Whatever serves the model, an Anthropic caller must get the same behaviour: text, streams with the
exact event sequence, tool calls (single and streamed), tool results, images, stop reasons, usage,
and provider errors as the SDK's own exception classes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from tests.conftest import MASTER_KEY, GatewayProcess
from tests.fakes import Reply, ToolCalls
from tests.fakes.server import FakeProviderServer

from .cases import ProviderCase
from .cases import gateway_model as model

USER: list[Any] = [{"role": "user", "content": "What is the capital of France?"}]
PNG_B64 = "iVBORw0KGgo="
WEATHER: Any = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
SDK_ERRORS: dict[int, type[anthropic.APIStatusError]] = {
    429: anthropic.RateLimitError,
    500: anthropic.InternalServerError,
}


@pytest.fixture(scope="module")
def claude(conformance_gateway: GatewayProcess) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=conformance_gateway.url, api_key=MASTER_KEY, max_retries=0, timeout=15
    ) as c:
        yield c


def test_text_reply_and_usage(
    claude: anthropic.Anthropic, case: ProviderCase, fakes: dict[str, FakeProviderServer]
) -> None:
    """A plain reply is a `message` with one text block, `end_turn`, and the provider's token counts."""
    fakes[case.id].enqueue(Reply("Paris is the capital.", prompt_tokens=12, completion_tokens=4))
    reply = claude.messages.create(model=model(case), max_tokens=100, messages=USER)
    assert reply.model == model(case) and reply.id.startswith("msg_")
    assert [(b.type, getattr(b, "text", None)) for b in reply.content] == [("text", "Paris is the capital.")]
    assert reply.stop_reason == "end_turn"
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (12, 4)


def test_stream_event_sequence_text_and_usage(
    claude: anthropic.Anthropic, case: ProviderCase, fakes: dict[str, FakeProviderServer]
) -> None:
    """A stream is message_start, one text block, message_delta (with usage), message_stop; text is whole."""
    fakes[case.id].enqueue(Reply("Paris is the capital of France.", prompt_tokens=9, completion_tokens=6))
    events = list(claude.messages.create(model=model(case), max_tokens=100, messages=USER, stream=True))
    names = [e.type for e in events]
    deltas = names.count("content_block_delta")
    assert deltas >= 2
    assert names == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    text = "".join(
        e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"
    )
    assert text == "Paris is the capital of France."
    final = events[-2]
    assert final.type == "message_delta"
    assert final.delta.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (9, 6)


def test_max_tokens_stop_reason(
    claude: anthropic.Anthropic, case: ProviderCase, fakes: dict[str, FakeProviderServer]
) -> None:
    """The provider's own "out of tokens" reason is `max_tokens`, streamed and not."""
    fake = fakes[case.id]
    fake.enqueue(Reply("Paris is", finish_reason=case.length_reason))
    assert claude.messages.create(model=model(case), max_tokens=2, messages=USER).stop_reason == "max_tokens"
    fake.enqueue(Reply("Paris is", finish_reason=case.length_reason))
    with claude.messages.stream(model=model(case), max_tokens=2, messages=USER) as stream:
        assert stream.get_final_message().stop_reason == "max_tokens"


def test_single_tool_call(
    claude: anthropic.Anthropic, case: ProviderCase, fakes: dict[str, FakeProviderServer]
) -> None:
    """A tool call is a tool_use block with an id, the name and the parsed input; stop reason `tool_use`."""
    fakes[case.id].enqueue(ToolCalls([("get_weather", {"city": "Paris"})]))
    reply = claude.messages.create(model=model(case), max_tokens=100, messages=USER, tools=[WEATHER])
    assert reply.stop_reason == "tool_use"
    uses = [b for b in reply.content if b.type == "tool_use"]
    assert len(uses) == 1 and uses[0].id
    assert uses[0].name == "get_weather" and uses[0].input == {"city": "Paris"}


def test_streamed_tool_calls(
    claude: anthropic.Anthropic, case: ProviderCase, fakes: dict[str, FakeProviderServer]
) -> None:
    """Streamed tool calls rebuild (in the SDK's stream helper) into tool_use blocks with complete input."""
    calls = [("get_weather", {"city": "Paris"})]
    if case.parallel_tools:
        calls.append(("get_weather", {"city": "Rome"}))
    fakes[case.id].enqueue(ToolCalls(calls))
    with claude.messages.stream(model=model(case), max_tokens=100, messages=USER, tools=[WEATHER]) as stream:
        events = list(stream)
        final = stream.get_final_message()
    starts = [e for e in events if e.type == "content_block_start"]
    assert [e.index for e in starts] == list(range(len(starts)))
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == calls
    assert len({u.id for u in uses}) == len(calls)
    assert final.stop_reason == "tool_use"


def test_tool_result_round_trip(
    claude: anthropic.Anthropic, case: ProviderCase, fakes: dict[str, FakeProviderServer]
) -> None:
    """A prior tool_use and its tool_result reach the provider linked by their id."""
    if case.received_tool_result is None:
        pytest.skip(f"{case.id} has no tool results")
    fake = fakes[case.id]
    messages: Any = [
        USER[0],
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "sunny, 21 C"}],
        },
    ]
    fake.enqueue(Reply("It is sunny."))
    reply = claude.messages.create(model=model(case), max_tokens=100, messages=messages, tools=[WEATHER])
    assert reply.content[0].type == "text" and reply.content[0].text == "It is sunny."
    assert case.received_tool_result(fake.requests[-1])


def test_image_input(
    claude: anthropic.Anthropic, case: ProviderCase, fakes: dict[str, FakeProviderServer]
) -> None:
    """A base64 image block reaches the provider as an image in its own format."""
    if case.received_image is None:
        pytest.skip(f"{case.id} takes no images")
    fake = fakes[case.id]
    content: Any = [
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_B64}},
    ]
    claude.messages.create(model=model(case), max_tokens=100, messages=[{"role": "user", "content": content}])
    assert case.received_image(fake.requests[-1])


@pytest.mark.parametrize("status", sorted(SDK_ERRORS))
def test_provider_errors_reach_the_sdk_as_their_class(
    claude: anthropic.Anthropic, case: ProviderCase, fakes: dict[str, FakeProviderServer], status: int
) -> None:
    """A provider 429 is RateLimitError keeping retry-after; a provider 500 is InternalServerError (502)."""
    fakes[case.id].enqueue(case.error_or_skip(status, retry_after="7" if status == 429 else None))
    with pytest.raises(SDK_ERRORS[status]) as caught:
        claude.messages.create(model=model(case), max_tokens=100, messages=USER)
    assert caught.value.status_code == (status if status < 500 else 502)
    body = caught.value.body
    assert isinstance(body, dict) and body["type"] == "error" and body["error"]["message"]
    if status == 429:
        assert caught.value.response.headers.get("retry-after") == "7"
        assert body["error"]["type"] == "rate_limit_error"
