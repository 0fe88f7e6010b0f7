"""Ollama's native /api/chat behind the OpenAI surface (reference §6.1)."""

from __future__ import annotations

from tests.fakes.fake_ollama import FakeOllama
from tests.fakes.server import FakeProviderServer, RecordedRequest

from . import ProviderCase


def _image(sent: RecordedRequest) -> bool:
    message = sent.json["messages"][-1]
    return message.get("images") == ["iVBORw0KGgo="] and message["content"] == "What is this?"


def _tool_result(sent: RecordedRequest) -> bool:
    messages = sent.json["messages"]
    call = messages[1]["tool_calls"][0]
    return call == {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}} and messages[2] == {
        "role": "tool",
        "content": "sunny, 21 C",
        "tool_name": "get_weather",
    }


def _yaml(fake: FakeProviderServer) -> str:
    return f"""provider: ollama
    model: llama3.2
    api_base: {fake.base_url}"""


CASE = ProviderCase(
    id="ollama",
    make_fake=FakeOllama,
    model_yaml=_yaml,
    length_reason="length",
    received_image=_image,
    received_tool_result=_tool_result,
    # A bare Ollama server has no keys, so no 401/403; 404 is a model not pulled, 503 a full queue.
    error_statuses=(400, 404, 429, 500, 503),
)
