"""OpenAI: Chat Completions passed through (reference §1)."""

from __future__ import annotations

from tests.fakes import FakeOpenAI
from tests.fakes.server import FakeProviderServer, RecordedRequest

from . import ProviderCase

KEY = "sk-conformance-openai"


def _image(sent: RecordedRequest) -> bool:
    parts = sent.json["messages"][-1]["content"]
    return any(
        p.get("type") == "image_url" and p["image_url"]["url"].startswith("data:image/png") for p in parts
    )


def _tool_result(sent: RecordedRequest) -> bool:
    messages = sent.json["messages"]
    return messages[1]["tool_calls"][0]["id"] == "call_1" and messages[2]["tool_call_id"] == "call_1"


def _yaml(fake: FakeProviderServer) -> str:
    return f"""provider: openai
    model: gpt-4o-mini
    api_base: {fake.base_url}
    api_key: {KEY}"""


CASE = ProviderCase(
    id="openai",
    make_fake=lambda: FakeOpenAI(api_key=KEY),
    model_yaml=_yaml,
    length_reason="length",
    received_image=_image,
    received_tool_result=_tool_result,
)
