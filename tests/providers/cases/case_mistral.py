"""Mistral: OpenAI-shaped but strict — renamed parameters, 9-character tool-call ids (reference §6)."""

from __future__ import annotations

import re

from tests.fakes.fake_mistral import FakeMistral
from tests.fakes.server import FakeProviderServer, RecordedRequest

from . import ProviderCase

KEY = "mistral-conformance-key"
_ID = re.compile(r"[A-Za-z0-9]{9}")


def _image(sent: RecordedRequest) -> bool:
    parts = sent.json["messages"][-1]["content"]
    return any(
        p.get("type") == "image_url" and p["image_url"]["url"].startswith("data:image/png") for p in parts
    )


def _tool_result(sent: RecordedRequest) -> bool:
    # The suite's `call_1` is not a valid Mistral id: it must arrive rewritten, the same on both sides.
    messages = sent.json["messages"]
    call_id = messages[1]["tool_calls"][0]["id"]
    return bool(_ID.fullmatch(call_id)) and messages[2]["tool_call_id"] == call_id


def _yaml(fake: FakeProviderServer) -> str:
    return f"""provider: mistral
    model: mistral-small-latest
    api_base: {fake.base_url}
    api_key: {KEY}"""


CASE = ProviderCase(
    id="mistral",
    make_fake=lambda: FakeMistral(api_key=KEY),
    model_yaml=_yaml,
    length_reason="model_length",
    received_image=_image,
    received_tool_result=_tool_result,
)
