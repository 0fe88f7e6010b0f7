"""AWS Bedrock Converse / ConverseStream behind the OpenAI surface, SigV4-signed (reference §5).

The model id is a cross-region inference profile id with a `:` (percent-encoded in the path),
and the fake requires a session token, so every call also proves the signature covers the
token and the exact path sent.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.fake_bedrock import FakeBedrock, default_error, error_type_header
from tests.fakes.server import FakeProviderServer, RecordedRequest

from . import ProviderCase

ACCESS_KEY = "AKIDCONFORMANCE01"
SECRET_KEY = "conformance/Secret+Key/0123456789abcdef"
SESSION_TOKEN = "FwoGZXIvYXdzEConformanceSessionToken"
REGION = "eu-west-3"
MODEL_ID = "eu.anthropic.claude-3-7-sonnet-20250219-v1:0"


def _image(sent: RecordedRequest) -> bool:
    blocks = sent.json["messages"][-1]["content"]
    return any(b.get("image") == {"format": "png", "source": {"bytes": "iVBORw0KGgo="}} for b in blocks)


def _tool_result(sent: RecordedRequest) -> bool:
    messages = sent.json["messages"]
    tool_use = messages[1]["content"][-1]["toolUse"]
    result = messages[2]["content"][0]["toolResult"]
    return (
        tool_use["toolUseId"] == "call_1"
        and result["toolUseId"] == "call_1"
        and result["content"] == [{"text": "sunny, 21 C"}]
        and sent.json["toolConfig"]["tools"][0]["toolSpec"]["name"] == "get_weather"
    )


def _yaml(fake: FakeProviderServer) -> str:
    return f"""provider: bedrock
    model: {MODEL_ID}
    api_base: {fake.base_url}
    aws_region: {REGION}
    aws_access_key_id: {ACCESS_KEY}
    aws_secret_access_key: {SECRET_KEY}
    aws_session_token: {SESSION_TOKEN}"""


def _error_kwargs(status: int) -> dict[str, Any]:
    # Bedrock names every error in x-amzn-ErrorType; its body is only {"message": ...}.
    return {"headers": error_type_header(default_error(status)[0])}


CASE = ProviderCase(
    id="bedrock",
    make_fake=lambda: FakeBedrock(
        access_key=ACCESS_KEY, secret_key=SECRET_KEY, session_token=SESSION_TOKEN, region=REGION
    ),
    model_yaml=_yaml,
    length_reason="max_tokens",
    received_image=_image,
    received_tool_result=_tool_result,
    error_kwargs=_error_kwargs,
)
