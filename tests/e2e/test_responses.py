"""The official OpenAI SDK's Responses API (`client.responses`) works against any model behind the
gateway: text, instructions, input items, streams, function tools, stored conversations, errors."""

from __future__ import annotations

import json
from typing import Any

import openai
import orjson
import pytest

from tests.conftest import MASTER_KEY, GatewayProcess, raw_request
from tests.fakes import CutStream, Error, FakeAnthropic, FakeOpenAI, Reply, ToolCalls
from tests.fakes.server import FakeProviderServer

QUESTION = "What is the capital of France?"
PNG_DATA_URL = "data:image/png;base64,iVBORw0KGgo="
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": False,
}
TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def collapse(types: list[str]) -> list[str]:
    """Event types with runs of the same delta event folded into one, to compare orders."""
    out: list[str] = []
    for kind in types:
        if not (out and out[-1] == kind and kind.endswith(".delta")):
            out.append(kind)
    return out


def fake_for(model: str, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic) -> FakeProviderServer:
    return fake_openai if model == "gpt-fake" else fake_anthropic


def sse_events(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of every SSE event in a raw Responses stream."""
    events = []
    for block in body.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in lines:
            events.append((lines.get("event", ""), json.loads(lines["data"])))
    return events


# ----------------------------------------------------------------------------------- text


@pytest.mark.parametrize("model", ["gpt-fake", "claude-fake"])
def test_text_reply_with_usage(
    client: openai.OpenAI, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, model: str
) -> None:
    """A string input gives a completed Response whose output_text and usage come from the provider."""
    fake = fake_for(model, fake_openai, fake_anthropic)
    fake.enqueue(Reply("Paris.", prompt_tokens=11, completion_tokens=2, cached_tokens=3))
    response = client.responses.create(model=model, input=QUESTION)
    assert response.id.startswith("resp_")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.model == model
    assert response.output_text == "Paris."
    assert response.output[0].type == "message" and response.output[0].id.startswith("msg_")
    assert response.usage is not None
    expected_input = 11 if model == "gpt-fake" else 14  # Anthropic's input_tokens excludes cache reads
    assert (response.usage.input_tokens, response.usage.output_tokens) == (expected_input, 2)
    assert response.usage.input_tokens_details.cached_tokens == 3
    assert response.usage.total_tokens == expected_input + 2


def test_request_fields_reach_the_upstream_as_chat_completions(
    client: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    """Sampling, limits, user and text format are translated; store/metadata stay in the gateway."""
    fake_openai.enqueue(Reply("{}"))
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    response = client.responses.create(
        model="gpt-fake",
        input=QUESTION,
        temperature=0.2,
        top_p=0.9,
        max_output_tokens=50,
        user="u-1",
        metadata={"ticket": "42"},
        text={"format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}},
    )
    sent = fake_openai.requests[-1].json
    assert sent["messages"] == [{"role": "user", "content": QUESTION}]
    assert (sent["temperature"], sent["top_p"], sent["user"]) == (0.2, 0.9, "u-1")
    assert sent["max_completion_tokens"] == 50  # OpenAI's reasoning models refuse max_tokens
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": True},
    }
    assert "store" not in sent and "metadata" not in sent and "stream" not in sent
    assert response.metadata == {"ticket": "42"}
    assert response.max_output_tokens == 50 and response.temperature == 0.2


@pytest.mark.parametrize("model", ["gpt-fake", "claude-fake"])
def test_instructions_become_a_system_message(
    client: openai.OpenAI, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, model: str
) -> None:
    """`instructions` reach the provider as the system prompt and are echoed on the Response."""
    fake = fake_for(model, fake_openai, fake_anthropic)
    fake.enqueue(Reply("Paris."))
    response = client.responses.create(model=model, instructions="Answer in one word.", input=QUESTION)
    assert response.instructions == "Answer in one word."
    sent = fake.requests[-1].json
    if model == "gpt-fake":
        assert sent["messages"][0] == {"role": "system", "content": "Answer in one word."}
        assert sent["messages"][1] == {"role": "user", "content": QUESTION}
    else:
        assert sent["system"] == "Answer in one word."
        assert sent["messages"] == [{"role": "user", "content": QUESTION}]


def test_input_items_with_image_and_history(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    """Message items (developer, user text + image, assistant output_text) become chat messages in order."""
    fake_openai.enqueue(Reply("A pixel."))
    client.responses.create(
        model="gpt-fake",
        input=[
            {"role": "developer", "content": "Be terse."},
            {"role": "user", "content": "Hi"},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Hello.", "annotations": []}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "image_url": PNG_DATA_URL, "detail": "low"},
                ],
            },
        ],
    )
    assert fake_openai.requests[-1].json["messages"] == [
        {"role": "developer", "content": "Be terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": PNG_DATA_URL, "detail": "low"}},
            ],
        },
    ]


# -------------------------------------------------------------------------------- streams


@pytest.mark.parametrize("model", ["gpt-fake", "claude-fake", "demo"])
def test_stream_events_in_order(
    client: openai.OpenAI, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, model: str
) -> None:
    """A streamed text turn emits the Responses event sequence, numbered, ending in response.completed."""
    if model != "demo":
        fake_for(model, fake_openai, fake_anthropic).enqueue(
            Reply("Paris is the capital of France.", prompt_tokens=9, completion_tokens=6)
        )
    events = list(client.responses.create(model=model, input=QUESTION, stream=True))
    assert collapse([e.type for e in events]) == TEXT_EVENTS
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    expected = "echo: " + QUESTION if model == "demo" else "Paris is the capital of France."
    assert deltas == expected
    assert sum(e.type == "response.output_text.delta" for e in events) >= 2
    created, final = events[0], events[-1]
    assert created.type == "response.created" and created.response.status == "in_progress"
    assert final.type == "response.completed"
    assert final.response.id == created.response.id
    assert final.response.output_text == expected
    assert final.response.usage is not None and final.response.usage.output_tokens > 0
    if model != "demo":
        assert (final.response.usage.input_tokens, final.response.usage.output_tokens) == (9, 6)


def test_stream_helper_accumulates_the_final_response(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    """The SDK's `responses.stream()` helper accepts the gateway's events and rebuilds the response."""
    fake_openai.enqueue(Reply("Paris, of course."))
    with client.responses.stream(model="gpt-fake", input=QUESTION) as stream:
        texts = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(texts) == "Paris, of course."
    assert final.output_text == "Paris, of course."


def test_stream_is_sse_with_event_lines_and_no_done(gateway: GatewayProcess) -> None:
    """On the wire every event has an `event:` line matching its `type`, and there is no `[DONE]`."""
    body = orjson.dumps({"model": "demo", "input": "hi", "stream": True})
    status, headers, raw = raw_request(
        gateway.url, "POST", "/v1/responses", body, {"Authorization": f"Bearer {MASTER_KEY}"}
    )
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = sse_events(raw)
    assert all(name == data["type"] for name, data in events)
    assert events[-1][0] == "response.completed"
    assert b"[DONE]" not in raw


# ---------------------------------------------------------------------------------- tools


def test_function_tool_round_trip_by_replaying_output(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    """A function_call output item, replayed with its function_call_output, reaches OpenAI as a tool turn."""
    fake_openai.enqueue(ToolCalls([("get_weather", {"city": "Paris"})]))
    first = client.responses.create(model="gpt-fake", input=QUESTION, tools=[WEATHER], store=False)
    sent = fake_openai.requests[-1].json
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather in a city",
                "parameters": WEATHER["parameters"],
                "strict": False,
            },
        }
    ]
    call = first.output[0]
    assert call.type == "function_call" and call.id and call.id.startswith("fc_")
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    assert call.call_id and call.status == "completed"

    fake_openai.enqueue(Reply("It is 21C in Paris."))
    second = client.responses.create(
        model="gpt-fake",
        input=[
            {"role": "user", "content": QUESTION},
            *first.output,  # the SDK documentation's pattern: output items go back as input
            {"type": "function_call_output", "call_id": call.call_id, "output": "21C"},
        ],
        tools=[WEATHER],
    )
    assert second.output_text == "It is 21C in Paris."
    messages = fake_openai.requests[-1].json["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["id"] == call.call_id
    assert messages[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": call.arguments}
    assert messages[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "21C"}


def test_function_tool_round_trip_by_previous_response_id_on_anthropic(
    client: openai.OpenAI, fake_anthropic: FakeAnthropic
) -> None:
    """Continuing a tool call by `previous_response_id` sends Claude a matching tool_use/tool_result pair."""
    fake_anthropic.enqueue(ToolCalls([("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Lyon"})]))
    first = client.responses.create(model="claude-fake", input=QUESTION, tools=[WEATHER])
    calls = [item for item in first.output if item.type == "function_call"]
    assert [json.loads(c.arguments)["city"] for c in calls] == ["Paris", "Lyon"]

    fake_anthropic.enqueue(Reply("Sunny in both."))
    second = client.responses.create(
        model="claude-fake",
        previous_response_id=first.id,
        input=[
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "21C"},
            {"type": "function_call_output", "call_id": calls[1].call_id, "output": "19C"},
        ],
        tools=[WEATHER],
    )
    assert second.output_text == "Sunny in both."
    assert second.previous_response_id == first.id
    sent = fake_anthropic.requests[-1].json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert [b["id"] for b in sent[1]["content"] if b["type"] == "tool_use"] == [c.call_id for c in calls]
    assert [(b["tool_use_id"], b["content"]) for b in sent[2]["content"]] == [
        (calls[0].call_id, "21C"),
        (calls[1].call_id, "19C"),
    ]


def test_tool_choice_and_parallel_flag_are_translated(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    """A flat named tool_choice becomes the nested chat form; parallel_tool_calls is forwarded and echoed."""
    fake_openai.enqueue(ToolCalls([("get_weather", {"city": "Rome"})]))
    response = client.responses.create(
        model="gpt-fake",
        input=QUESTION,
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
        parallel_tool_calls=False,
    )
    sent = fake_openai.requests[-1].json
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False
    assert response.parallel_tool_calls is False
    assert response.tools[0].type == "function" and response.tools[0].name == "get_weather"


@pytest.mark.parametrize("model", ["gpt-fake", "claude-fake"])
def test_streamed_function_calls(
    client: openai.OpenAI, fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, model: str
) -> None:
    """Streamed tool calls become function_call items with argument deltas, each closed before the next."""
    fake_for(model, fake_openai, fake_anthropic).enqueue(
        ToolCalls([("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Lyon"})])
    )
    events = list(client.responses.create(model=model, input=QUESTION, tools=[WEATHER], stream=True))
    one_call = [
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
    ]
    head = ["response.created", "response.in_progress"]
    assert collapse([e.type for e in events]) == [*head, *one_call, *one_call, "response.completed"]
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [json.loads(e.arguments)["city"] for e in done] == ["Paris", "Lyon"]
    for item_done in (e for e in events if e.type == "response.function_call_arguments.done"):
        deltas = [
            e.delta
            for e in events
            if e.type == "response.function_call_arguments.delta" and e.item_id == item_done.item_id
        ]
        assert "".join(deltas) == item_done.arguments
    final = events[-1].response
    assert [(o.type, o.name) for o in final.output] == [("function_call", "get_weather")] * 2
    assert len({o.call_id for o in final.output}) == 2


# -------------------------------------------------------------------- stored conversations


def test_previous_response_id_continues_the_conversation(
    client: openai.OpenAI, fake_openai: FakeOpenAI
) -> None:
    """The second call's upstream request holds the first turn; the first turn's instructions do not carry."""
    fake_openai.enqueue(Reply("Hello Ada."), Reply("Your name is Ada."))
    first = client.responses.create(model="gpt-fake", instructions="Be warm.", input="My name is Ada.")
    second = client.responses.create(
        model="gpt-fake", previous_response_id=first.id, input="What is my name?"
    )
    assert second.output_text == "Your name is Ada."
    assert fake_openai.requests[-1].json["messages"] == [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Hello Ada."},
        {"role": "user", "content": "What is my name?"},
    ]
    third_stream = list(
        client.responses.create(model="demo", previous_response_id=second.id, input="Thanks!", stream=True)
    )
    assert third_stream[-1].response.output_text == "echo: Thanks!"
    fake_openai.enqueue(Reply("Bye."))
    client.responses.create(model="gpt-fake", previous_response_id=third_stream[-1].response.id, input="Bye")
    assert [m["content"] for m in fake_openai.requests[-1].json["messages"]] == [
        "My name is Ada.",
        "Hello Ada.",
        "What is my name?",
        "Your name is Ada.",
        "Thanks!",
        "echo: Thanks!",
        "Bye",
    ]


def test_unknown_previous_response_id_is_not_found(client: openai.OpenAI) -> None:
    """An unknown `previous_response_id` is a 404 with OpenAI's `previous_response_not_found` code."""
    with pytest.raises(openai.NotFoundError) as caught:
        client.responses.create(model="demo", previous_response_id="resp_nope", input="hi")
    assert caught.value.code == "previous_response_not_found"
    assert caught.value.param == "previous_response_id"


def test_retrieve_and_delete_stored_responses(client: openai.OpenAI) -> None:
    """GET returns the stored Response; DELETE removes it; `store: false` keeps nothing."""
    created = client.responses.create(model="demo", input="keep me")
    fetched = client.responses.retrieve(created.id)
    assert fetched.id == created.id and fetched.output_text == "echo: keep me"
    assert fetched.model_dump() == created.model_dump()
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(created.id)
    unstored = client.responses.create(model="demo", input="forget me", store=False)
    assert unstored.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="demo", previous_response_id=unstored.id, input="hi")


# ------------------------------------------------------------------------ ends and errors


def test_length_makes_the_response_incomplete(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    """Running out of tokens gives status incomplete with reason max_output_tokens, streamed and not."""
    fake_openai.enqueue(Reply("Paris is", finish_reason="length"))
    response = client.responses.create(model="gpt-fake", input=QUESTION, max_output_tokens=2)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output[0].status == "incomplete"
    assert response.output_text == "Paris is"
    events = list(
        client.responses.create(model="demo", input="one two three four", max_output_tokens=2, stream=True)
    )
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.status == "incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"
    assert events[-1].response.output_text == "echo: one "


def test_provider_errors_reach_the_sdk_as_their_class(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    """Provider errors and the gateway's own refusals raise the SDK's matching exception classes."""
    fake_openai.enqueue(Error(429, headers={"retry-after": "3"}))
    with pytest.raises(openai.RateLimitError) as limited:
        client.responses.create(model="gpt-fake", input=QUESTION)
    assert limited.value.response.headers.get("retry-after") == "3"
    fake_openai.enqueue(Error(500))
    with pytest.raises(openai.InternalServerError) as failed:
        client.responses.create(model="gpt-fake", input=QUESTION, stream=True)
    assert failed.value.status_code == 502
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model="no-such-model", input=QUESTION)
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as builtin:
        client.responses.create(model="demo", input=QUESTION, tools=[{"type": "web_search"}])
    assert builtin.value.param == "tools[0].type" and "web_search" in builtin.value.message
    with pytest.raises(openai.BadRequestError) as unknown:
        client.responses.create(model="demo", input=QUESTION, extra_body={"frobnicate": True})
    assert unknown.value.param == "frobnicate"


def test_failure_after_first_byte_ends_with_an_error_event(
    client: openai.OpenAI, gateway: GatewayProcess
) -> None:
    """A stream cut after its first tokens delivers them, then one error event the SDK raises as APIError."""
    received: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        for event in client.responses.create(model="demo-cut", input="hi", stream=True):
            received.append(event.type)
    assert "response.output_text.delta" in received
    assert "response.completed" not in received
    assert caught.value.message
    body = orjson.dumps({"model": "demo-cut", "input": "hi", "stream": True})
    _, _, raw = raw_request(
        gateway.url, "POST", "/v1/responses", body, {"Authorization": f"Bearer {MASTER_KEY}"}
    )
    name, data = sse_events(raw)[-1]
    assert name == "error" and data["type"] == "error"
    assert data["code"] == "upstream_bad_response" and data["message"]
    assert data["sequence_number"] == len(sse_events(raw)) - 1
    assert data["error"]["code"] == "upstream_bad_response"


def test_openai_cut_stream_ends_with_an_error_event(client: openai.OpenAI, fake_openai: FakeOpenAI) -> None:
    """A provider connection dropped mid-stream is reported in-band, never as a silent truncation."""
    fake_openai.enqueue(CutStream(after_events=4, then=Reply("one two three four five six seven")))
    received: list[str] = []
    with pytest.raises(openai.APIError):
        for event in client.responses.create(model="gpt-fake", input=QUESTION, stream=True):
            received.append(event.type)
    assert received[:2] == ["response.created", "response.in_progress"]
    assert "response.completed" not in received
