"""One conformance suite over every provider adapter: the official OpenAI SDK, through a real gateway
process, against each provider's wire-exact fake (tests/providers/cases/ holds one case each).

Every adapter must give the caller the same behaviour: text, streams, tool calls (single, parallel,
streamed arguments), images, tool results, stop reasons, usage (streamed too) and each error class.
"""

from __future__ import annotations

import json

import openai
import pytest

from tests.fakes import Error, Reply, ToolCalls
from tests.fakes.server import FakeProviderServer

from .cases import ProviderCase
from .cases import gateway_model as model

USER = [{"role": "user", "content": "What is the capital of France?"}]
PNG_DATA_URL = "data:image/png;base64,iVBORw0KGgo="
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
# Provider status -> the SDK class the caller must see (provider 5xx are reported as 502).
SDK_ERRORS: dict[int, type[openai.APIStatusError]] = {
    400: openai.BadRequestError,
    401: openai.AuthenticationError,
    403: openai.PermissionDeniedError,
    404: openai.NotFoundError,
    429: openai.RateLimitError,
    500: openai.InternalServerError,
    503: openai.InternalServerError,
    529: openai.InternalServerError,
}


def test_text_reply_and_usage(
    client: openai.OpenAI, case: ProviderCase, fakes: dict[str, FakeProviderServer]
) -> None:
    """A plain reply arrives as a chat.completion with the provider's usage, normalised."""
    fakes[case.id].enqueue(Reply("Paris is the capital.", prompt_tokens=12, completion_tokens=4))
    reply = client.chat.completions.create(model=model(case), messages=USER)
    assert reply.choices[0].message.content == "Paris is the capital."
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (12, 4)
    assert reply.usage.total_tokens == 16


def test_stream_text_and_streamed_usage(
    client: openai.OpenAI, case: ProviderCase, fakes: dict[str, FakeProviderServer]
) -> None:
    """A stream carries the whole text in order, ends with `stop`, and reports usage when asked."""
    fakes[case.id].enqueue(Reply("Paris is the capital of France.", prompt_tokens=9, completion_tokens=6))
    chunks = list(
        client.chat.completions.create(
            model=model(case), messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Paris is the capital of France."
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    usage = [c.usage for c in chunks if c.usage]
    assert len(usage) == 1 and (usage[0].prompt_tokens, usage[0].completion_tokens) == (9, 6)


def test_length_stop_reason(
    client: openai.OpenAI, case: ProviderCase, fakes: dict[str, FakeProviderServer]
) -> None:
    """The provider's own "out of tokens" stop reason becomes `length`, streamed and not."""
    fake = fakes[case.id]
    fake.enqueue(Reply("Paris is", finish_reason=case.length_reason))
    reply = client.chat.completions.create(model=model(case), messages=USER, max_tokens=2)
    assert reply.choices[0].finish_reason == "length"
    fake.enqueue(Reply("Paris is", finish_reason=case.length_reason))
    chunks = list(client.chat.completions.create(model=model(case), messages=USER, max_tokens=2, stream=True))
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "length"
    ]


def test_single_tool_call(
    client: openai.OpenAI, case: ProviderCase, fakes: dict[str, FakeProviderServer]
) -> None:
    """A tool call arrives with its name, JSON arguments, an id, and `tool_calls` as the finish reason."""
    fakes[case.id].enqueue(ToolCalls([("get_weather", {"city": "Paris"})]))
    reply = client.chat.completions.create(model=model(case), messages=USER, tools=[WEATHER])
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert len(calls) == 1 and calls[0].id
    assert calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}


def test_parallel_tool_calls(
    client: openai.OpenAI, case: ProviderCase, fakes: dict[str, FakeProviderServer]
) -> None:
    """Several tool calls in one turn keep their order and distinct ids."""
    if not case.parallel_tools:
        pytest.skip(f"{case.id} has no parallel tool calls")
    fakes[case.id].enqueue(ToolCalls([("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]))
    reply = client.chat.completions.create(model=model(case), messages=USER, tools=[WEATHER])
    calls = reply.choices[0].message.tool_calls or []
    assert [json.loads(c.function.arguments)["city"] for c in calls] == ["Paris", "Rome"]
    assert len({c.id for c in calls}) == 2


def test_streamed_tool_arguments(
    client: openai.OpenAI, case: ProviderCase, fakes: dict[str, FakeProviderServer]
) -> None:
    """Streamed tool calls reassemble by index into the right names and complete JSON arguments."""
    calls_in = [("get_weather", {"city": "Paris"})]
    if case.parallel_tools:
        calls_in.append(("get_weather", {"city": "Rome"}))
    fakes[case.id].enqueue(ToolCalls(calls_in))
    chunks = list(
        client.chat.completions.create(model=model(case), messages=USER, tools=[WEATHER], stream=True)
    )
    names: dict[int, str] = {}
    args: dict[int, str] = {}
    ids: dict[int, str] = {}
    for chunk in chunks:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            if call.id:
                ids[call.index] = call.id
            if call.function and call.function.name:
                names[call.index] = call.function.name
            if call.function and call.function.arguments:
                args[call.index] = args.get(call.index, "") + call.function.arguments
    assert [names[i] for i in sorted(names)] == [name for name, _ in calls_in]
    assert [json.loads(args[i]) for i in sorted(args)] == [arguments for _, arguments in calls_in]
    assert len(ids) == len(calls_in)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["tool_calls"]


def test_image_input(client: openai.OpenAI, case: ProviderCase, fakes: dict[str, FakeProviderServer]) -> None:
    """An image given as a data URL reaches the provider as an image in its own format."""
    if case.received_image is None:
        pytest.skip(f"{case.id} takes no images")
    fake = fakes[case.id]
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": PNG_DATA_URL}},
    ]
    client.chat.completions.create(model=model(case), messages=[{"role": "user", "content": content}])
    assert case.received_image(fake.requests[-1])


def test_tool_result_round_trip(
    client: openai.OpenAI, case: ProviderCase, fakes: dict[str, FakeProviderServer]
) -> None:
    """A prior assistant tool call and its tool result reach the provider linked by their id."""
    if case.received_tool_result is None:
        pytest.skip(f"{case.id} has no tool results")
    fake = fakes[case.id]
    messages = [
        USER[0],
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
    ]
    fake.enqueue(Reply("It is sunny."))
    reply = client.chat.completions.create(model=model(case), messages=messages, tools=[WEATHER])
    assert reply.choices[0].message.content == "It is sunny."
    assert case.received_tool_result(fake.requests[-1])


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500, 503, 529])
def test_provider_errors_reach_the_sdk_as_their_class(
    client: openai.OpenAI, case: ProviderCase, fakes: dict[str, FakeProviderServer], status: int
) -> None:
    """Each provider error status becomes the matching OpenAI SDK exception; 429 keeps retry-after."""
    fakes[case.id].enqueue(case.error_or_skip(status, retry_after="7" if status == 429 else None))
    with pytest.raises(SDK_ERRORS[status]) as caught:
        client.chat.completions.create(model=model(case), messages=USER)
    expected = status if status < 500 else 502
    assert caught.value.status_code == expected
    assert caught.value.message
    if status == 429:
        assert caught.value.response.headers.get("retry-after") == "7"


def test_stream_error_before_first_token_is_an_http_error(
    client: openai.OpenAI, case: ProviderCase, fakes: dict[str, FakeProviderServer]
) -> None:
    """A provider error on a streamed call is an ordinary HTTP error, not a broken stream."""
    fakes[case.id].enqueue(Error(429, **case.error_kwargs(429)))
    with pytest.raises(openai.RateLimitError):
        list(client.chat.completions.create(model=model(case), messages=USER, stream=True))
