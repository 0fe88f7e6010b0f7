"""The Responses API (`client.responses`) over every provider adapter: the official OpenAI SDK, through
the shared conformance gateway, against each provider's wire-exact fake (tests/providers/cases/).

Whatever serves the model, a caller of `/v1/responses` gets the same Response objects and event
streams: text with usage, streamed text events, function calls (streamed too), tool results
linked by `call_id`, and `incomplete` when the provider runs out of tokens.
"""

from __future__ import annotations

import json

import openai

from tests.fakes import Reply, ToolCalls
from tests.fakes.server import FakeProviderServer

from .cases import ProviderCase
from .cases import gateway_model as model

QUESTION = "What is the capital of France?"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": False,
}


def calls_for(case: ProviderCase) -> list[tuple[str, dict[str, str]]]:
    calls = [("get_weather", {"city": "Paris"})]
    if case.parallel_tools:
        calls.append(("get_weather", {"city": "Rome"}))
    return calls


def test_responses_text_and_usage(
    client: openai.OpenAI, case: ProviderCase, fakes: dict[str, FakeProviderServer]
) -> None:
    """A plain reply is a completed Response with the provider's text and normalised usage."""
    fakes[case.id].enqueue(Reply("Paris is the capital.", prompt_tokens=12, completion_tokens=4))
    response = client.responses.create(model=model(case), input=QUESTION)
    assert response.status == "completed"
    assert response.model == model(case)
    assert response.output_text == "Paris is the capital."
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 4)
    assert response.usage.total_tokens == 16


def test_responses_stream(
    client: openai.OpenAI, case: ProviderCase, fakes: dict[str, FakeProviderServer]
) -> None:
    """A stream carries the whole text as output_text deltas and ends in response.completed with usage."""
    fakes[case.id].enqueue(Reply("Paris is the capital of France.", prompt_tokens=9, completion_tokens=6))
    events = list(client.responses.create(model=model(case), input=QUESTION, stream=True))
    types = [e.type for e in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "Paris is the capital of France."
    final = events[-1].response
    assert final.output_text == text
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens) == (9, 6)


def test_responses_function_calls(
    client: openai.OpenAI, case: ProviderCase, fakes: dict[str, FakeProviderServer]
) -> None:
    """Tool calls come back as function_call items with names, JSON arguments and distinct call ids."""
    expected = calls_for(case)
    fakes[case.id].enqueue(ToolCalls(expected))
    response = client.responses.create(model=model(case), input=QUESTION, tools=[WEATHER])
    calls = [item for item in response.output if item.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == expected
    assert all(c.call_id for c in calls) and len({c.call_id for c in calls}) == len(calls)


def test_responses_streamed_function_calls(
    client: openai.OpenAI, case: ProviderCase, fakes: dict[str, FakeProviderServer]
) -> None:
    """Streamed tool calls arrive as function_call items whose argument deltas add up to valid JSON."""
    expected = calls_for(case)
    fakes[case.id].enqueue(ToolCalls(expected))
    events = list(client.responses.create(model=model(case), input=QUESTION, tools=[WEATHER], stream=True))
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [json.loads(e.arguments) for e in done] == [arguments for _, arguments in expected]
    for item_done in done:
        pieces = [
            e.delta
            for e in events
            if e.type == "response.function_call_arguments.delta" and e.item_id == item_done.item_id
        ]
        assert "".join(pieces) == item_done.arguments
    final = events[-1]
    assert final.type == "response.completed"
    assert [o.name for o in final.response.output if o.type == "function_call"] == [n for n, _ in expected]


def test_responses_tool_result_round_trip(
    client: openai.OpenAI, case: ProviderCase, fakes: dict[str, FakeProviderServer]
) -> None:
    """function_call and function_call_output items reach the provider as a call and its linked result."""
    fake = fakes[case.id]
    fake.enqueue(Reply("It is sunny."))
    response = client.responses.create(
        model=model(case),
        input=[
            {"role": "user", "content": QUESTION},
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": '{"city":"Paris"}',
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21 C"},
        ],
        tools=[WEATHER],
    )
    assert response.output_text == "It is sunny."
    if case.received_tool_result is not None:
        assert case.received_tool_result(fake.requests[-1])


def test_responses_length_is_incomplete(
    client: openai.OpenAI, case: ProviderCase, fakes: dict[str, FakeProviderServer]
) -> None:
    """The provider's own "out of tokens" stop reason makes the Response incomplete (max_output_tokens)."""
    fakes[case.id].enqueue(Reply("Paris is", finish_reason=case.length_reason))
    response = client.responses.create(model=model(case), input=QUESTION, max_output_tokens=2)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "Paris is"
