"""OpenAI (api.openai.com): Chat Completions forwarded with minimal work, streams passed through."""

from __future__ import annotations

from ._openai_compat import OpenAICompatibleBase


class OpenAIAdapter(OpenAICompatibleBase):
    provider = "openai"
    default_api_base = "https://api.openai.com/v1"
