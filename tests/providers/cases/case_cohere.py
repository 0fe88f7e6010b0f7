"""Cohere v2 chat behind the OpenAI surface (reference §6.4)."""

from __future__ import annotations

import json

from tests.fakes.fake_cohere import FakeCohere
from tests.fakes.server import FakeProviderServer, RecordedRequest

from . import ProviderCase

KEY = "co-conformance-key"


def _image(sent: RecordedRequest) -> bool:
    items = sent.json["messages"][-1]["content"]
    return any(
        item.get("type") == "image_url" and item["image_url"]["url"] == "data:image/png;base64,iVBORw0KGgo="
        for item in items
    )


def _tool_result(sent: RecordedRequest) -> bool:
    messages = sent.json["messages"]
    call = messages[1]["tool_calls"][0]
    result = messages[2]
    return (
        call["id"] == "call_1"
        and json.loads(call["function"]["arguments"]) == {"city": "Paris"}
        and result == {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"}
    )


def _yaml(fake: FakeProviderServer) -> str:
    return f"""provider: cohere
    model: command-a-03-2025
    api_base: {fake.base_url}
    api_key: {KEY}"""


CASE = ProviderCase(
    id="cohere",
    make_fake=lambda: FakeCohere(api_key=KEY),
    model_yaml=_yaml,
    length_reason="MAX_TOKENS",
    received_image=_image,
    received_tool_result=_tool_result,
    # What the v2 API documents and sends (cohere-python v2/raw_client.py); no 529.
    error_statuses=(400, 401, 403, 404, 429, 500, 503),
)
