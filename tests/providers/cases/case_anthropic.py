"""Anthropic Messages API behind the OpenAI surface (reference §3)."""

from __future__ import annotations

from tests.fakes import FakeAnthropic
from tests.fakes.server import FakeProviderServer, RecordedRequest

from . import ProviderCase

KEY = "sk-ant-conformance"


def _image(sent: RecordedRequest) -> bool:
    blocks = sent.json["messages"][-1]["content"]
    return any(
        b.get("type") == "image"
        and b["source"] == {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
        for b in blocks
    )


def _tool_result(sent: RecordedRequest) -> bool:
    messages = sent.json["messages"]
    tool_use = messages[1]["content"][-1]
    result = messages[2]["content"][0]
    return (
        tool_use["type"] == "tool_use"
        and result["type"] == "tool_result"
        and result["tool_use_id"] == tool_use["id"]
    )


def _yaml(fake: FakeProviderServer) -> str:
    return f"""provider: anthropic
    model: claude-sonnet-4-5
    api_base: {fake.base_url}
    api_key: {KEY}"""


CASE = ProviderCase(
    id="anthropic",
    make_fake=lambda: FakeAnthropic(api_key=KEY),
    model_yaml=_yaml,
    length_reason="max_tokens",
    received_image=_image,
    received_tool_result=_tool_result,
    error_statuses=(400, 401, 403, 404, 429, 500, 529),
)
