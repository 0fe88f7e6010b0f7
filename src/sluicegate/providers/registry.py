"""Provider name -> adapter class, imported lazily so start-up loads only the adapters in use."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config.schema import ModelEntry
    from .base import Adapter

# name -> (module, class, env var holding the default API key, key required)
_PROVIDERS: dict[str, tuple[str, str, str | None, bool]] = {
    "openai": ("openai", "OpenAIAdapter", "OPENAI_API_KEY", True),
    "openai-compatible": ("openai_compatible", "OpenAICompatibleAdapter", None, False),
    "anthropic": ("anthropic", "AnthropicAdapter", "ANTHROPIC_API_KEY", True),
    "mock": ("mock", "MockAdapter", None, False),
    "azure": ("azure", "AzureAdapter", "AZURE_API_KEY", False),  # key or Entra bearer token (headers)
    "gemini": ("gemini", "GeminiAdapter", "GEMINI_API_KEY", True),
    "vertex": ("vertex", "VertexAdapter", None, False),  # service-account credentials, not a key
    "bedrock": ("bedrock", "BedrockAdapter", None, False),  # AWS credentials, not a key
    "mistral": ("mistral", "MistralAdapter", "MISTRAL_API_KEY", True),
    "cohere": ("cohere", "CohereAdapter", "COHERE_API_KEY", True),
    "ollama": ("ollama", "OllamaAdapter", None, False),
}


def provider_names() -> list[str]:
    return sorted(_PROVIDERS)


def adapter_class(provider: str) -> type[Adapter]:
    module_name, class_name, _, _ = _PROVIDERS[provider]
    module = importlib.import_module(f"{__package__}.{module_name}")
    cls: type[Adapter] = getattr(module, class_name)
    return cls


def default_api_key_env(provider: str, preset: str | None) -> str | None:
    if provider == "openai-compatible" and preset:
        from .openai_compatible import PRESETS

        found = PRESETS.get(preset)
        return found.key_env if found else None
    spec = _PROVIDERS.get(provider)
    return spec[2] if spec else None


def check_entry(entry: ModelEntry, path: str) -> None:
    """Provider-level validation of one `models[]` entry (called by the config loader)."""
    spec = _PROVIDERS.get(entry.provider)
    if spec is None:
        raise ConfigError(
            f"{path}.provider: unknown provider {entry.provider!r} (known: {', '.join(provider_names())})"
        )
    _, _, key_env, key_required = spec
    if key_required and not entry.api_key:
        raise ConfigError(f"{path}.api_key: required for provider {entry.provider} (or set {key_env})")
    if entry.preset is not None and entry.provider != "openai-compatible":
        raise ConfigError(f"{path}.preset: only allowed with provider: openai-compatible")
    check = getattr(adapter_class(entry.provider), "check", None)
    if check is not None:
        check(entry, path)


def make_adapter(entry: ModelEntry) -> Any:
    return adapter_class(entry.provider)(entry)
