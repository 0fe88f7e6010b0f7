"""Gemini on Vertex AI: the Gemini translation with OAuth bearer tokens (reference §4.8)."""

from __future__ import annotations

from typing import cast

from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.server import FakeProviderServer

from . import ProviderCase
from .case_gemini import received_image, received_tool_result


def _yaml(fake: FakeProviderServer) -> str:
    gemini = cast(FakeGemini, fake)
    # JSON is valid YAML inside single quotes (the key's "\n" escapes stay two characters).
    return f"""provider: vertex
    model: gemini-2.5-flash
    vertex_project: {gemini.project}
    vertex_location: europe-west4
    vertex_credentials: '{gemini.credentials_json}'
    api_base: {fake.base_url}"""


CASE = ProviderCase(
    id="vertex-gemini",
    make_fake=lambda: FakeGemini(project="conformance-project"),
    model_yaml=_yaml,
    length_reason="MAX_TOKENS",
    received_image=received_image,
    received_tool_result=received_tool_result,
    error_statuses=(400, 401, 403, 404, 429, 500, 503),
)
