"""Google Gemini API (AI Studio) behind the OpenAI surface (reference §4)."""

from __future__ import annotations

from typing import Any

from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.server import FakeProviderServer, RecordedRequest

from . import ProviderCase

KEY = "AIza-conformance-gemini"


def received_image(sent: RecordedRequest) -> bool:
    """The PNG data URL arrived as an `inlineData` part of the last user turn."""
    parts: list[dict[str, Any]] = sent.json["contents"][-1]["parts"]
    return {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}} in parts


def received_tool_result(sent: RecordedRequest) -> bool:
    """The call and its result arrived as functionCall / functionResponse parts with the same name."""
    contents = sent.json["contents"]
    call = contents[1]["parts"][0]["functionCall"]
    result = contents[2]["parts"][0]["functionResponse"]
    return (
        contents[1]["role"] == "model"
        and contents[2]["role"] == "user"
        and call == {"name": "get_weather", "args": {"city": "Paris"}}
        and result == {"name": "get_weather", "response": {"result": "sunny, 21 C"}}
    )


def _yaml(fake: FakeProviderServer) -> str:
    return f"""provider: gemini
    model: gemini-2.5-flash
    api_base: {fake.base_url}
    api_key: {KEY}"""


CASE = ProviderCase(
    id="gemini",
    make_fake=lambda: FakeGemini(api_key=KEY),
    model_yaml=_yaml,
    length_reason="MAX_TOKENS",
    received_image=received_image,
    received_tool_result=received_tool_result,
    # The Gemini API answers a bad key with 400 API_KEY_INVALID and never with 401.
    error_statuses=(400, 403, 404, 429, 500, 503),
)
