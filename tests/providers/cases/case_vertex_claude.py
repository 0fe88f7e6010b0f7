"""Anthropic Claude on Vertex AI: the Messages translation in Vertex's envelope (reference §3.6)."""

from __future__ import annotations

from typing import cast

from tests.fakes.fake_vertex_anthropic import FakeVertexAnthropic
from tests.fakes.server import FakeProviderServer

from . import ProviderCase
from .case_anthropic import _image, _tool_result


def _yaml(fake: FakeProviderServer) -> str:
    vertex = cast(FakeVertexAnthropic, fake)
    return f"""provider: vertex
    model: claude-sonnet-4-5@20250929
    vertex_project: {vertex.project}
    vertex_location: us-east5
    vertex_credentials: '{vertex.credentials_json}'
    api_base: {fake.base_url}"""


CASE = ProviderCase(
    id="vertex-claude",
    make_fake=lambda: FakeVertexAnthropic(project="conformance-project"),
    model_yaml=_yaml,
    length_reason="max_tokens",
    received_image=_image,
    received_tool_result=_tool_result,
    error_statuses=(400, 401, 403, 404, 429, 500, 529),
)
