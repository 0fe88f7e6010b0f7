"""Azure OpenAI, dated surface: deployment in the URL, `api-version` query, `api-key` auth (reference §2)."""

from __future__ import annotations

from typing import Any

from tests.fakes.fake_azure import FakeAzure, content_filter_error
from tests.fakes.server import FakeProviderServer, RecordedRequest

from . import ProviderCase

KEY = "azure-conformance-key"


def _image(sent: RecordedRequest) -> bool:
    parts = sent.json["messages"][-1]["content"]
    return any(
        p.get("type") == "image_url" and p["image_url"]["url"].startswith("data:image/png") for p in parts
    )


def _tool_result(sent: RecordedRequest) -> bool:
    messages = sent.json["messages"]
    return messages[1]["tool_calls"][0]["id"] == "call_1" and messages[2]["tool_call_id"] == "call_1"


def _error_kwargs(status: int) -> dict[str, Any]:
    if status == 400:
        return {"body": content_filter_error().body}  # the 400 Azure users meet most: a filtered prompt
    if status == 429:
        return {"headers": {"retry-after-ms": "7000"}}
    return {}


def _yaml(fake: FakeProviderServer) -> str:
    return f"""provider: azure
    model: gpt-4o-mini
    api_base: {fake.base_url}
    api_version: "2024-10-21"
    api_key: {KEY}"""


CASE = ProviderCase(
    id="azure",
    make_fake=lambda: FakeAzure(api_key=KEY),
    model_yaml=_yaml,
    length_reason="length",
    received_image=_image,
    received_tool_result=_tool_result,
    error_kwargs=_error_kwargs,
)
