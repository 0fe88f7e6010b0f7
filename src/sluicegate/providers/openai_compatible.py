"""Any OpenAI-compatible server, with presets for well-known ones (reference §6).

A preset gives the default base URL, whether the server honours `stream_options.include_usage`,
the environment variable holding its key, and the parameters it rejects. Quirks that need no
configuration are handled in the shared base for everyone: leading blank lines before JSON
(DeepSeek), SSE comment pings (llama.cpp, OpenRouter), in-band `data: {"error":...}` events
(OpenRouter), the old vLLM error body, usage inside `x_groq` (Groq).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from ._openai_compat import OpenAICompatibleBase


@dataclass(frozen=True, slots=True)
class Preset:
    api_base: str | None
    key_env: str | None = None
    stream_usage: bool = True
    unsupported: frozenset[str] = frozenset()


PRESETS: dict[str, Preset] = {
    "vllm": Preset("http://127.0.0.1:8000/v1", key_env="VLLM_API_KEY"),
    "tgi": Preset("http://127.0.0.1:8080/v1", key_env="HF_TOKEN"),
    "llamacpp": Preset("http://127.0.0.1:8080/v1", key_env="LLAMACPP_API_KEY"),
    "localai": Preset("http://127.0.0.1:8080/v1", key_env="LOCALAI_API_KEY"),
    "groq": Preset(
        "https://api.groq.com/openai/v1",
        key_env="GROQ_API_KEY",
        unsupported=frozenset({"logprobs", "top_logprobs", "logit_bias"}),
    ),
    "together": Preset("https://api.together.xyz/v1", key_env="TOGETHER_API_KEY"),
    "fireworks": Preset("https://api.fireworks.ai/inference/v1", key_env="FIREWORKS_API_KEY"),
    "deepseek": Preset("https://api.deepseek.com/v1", key_env="DEEPSEEK_API_KEY"),
    "openrouter": Preset("https://openrouter.ai/api/v1", key_env="OPENROUTER_API_KEY"),
    "xai": Preset("https://api.x.ai/v1", key_env="XAI_API_KEY"),
}


class OpenAICompatibleAdapter(OpenAICompatibleBase):
    provider = "openai-compatible"

    def __init__(self, entry: Any) -> None:
        preset = PRESETS.get(entry.preset) if entry.preset else None
        if preset is not None:
            self.default_api_base = preset.api_base  # type: ignore[misc]  # per-instance override of the class default
            self.supports_stream_usage = preset.stream_usage  # type: ignore[misc]  # same
            self.unsupported_params = preset.unsupported  # type: ignore[misc]  # same
        super().__init__(entry)

    @staticmethod
    def check(entry: Any, path: str) -> None:
        if entry.preset is not None and entry.preset not in PRESETS:
            known = ", ".join(sorted(PRESETS))
            raise ConfigError(f"{path}.preset: unknown preset {entry.preset!r} (known: {known})")
        if entry.api_base is None and entry.preset is None:
            raise ConfigError(f"{path}.api_base: required for provider openai-compatible without a preset")
