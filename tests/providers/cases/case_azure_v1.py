"""Azure OpenAI, v1 API surface (`/openai/v1/`, deployment as body `model`) with an Entra ID token (§2)."""

from __future__ import annotations

from tests.fakes.fake_azure import FakeAzure
from tests.fakes.server import FakeProviderServer

from . import ProviderCase
from .case_azure import _error_kwargs, _image, _tool_result

TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.conformance.token"


def _yaml(fake: FakeProviderServer) -> str:
    return f"""provider: azure
    model: gpt-4o-mini
    api_base: {fake.base_url}/openai/v1/
    api_version: v1
    headers: {{authorization: "Bearer {TOKEN}"}}"""


CASE = ProviderCase(
    id="azure-v1",
    make_fake=lambda: FakeAzure(bearer_token=TOKEN),
    model_yaml=_yaml,
    length_reason="length",
    received_image=_image,
    received_tool_result=_tool_result,
    error_kwargs=_error_kwargs,
)
