"""Model prices: which price a deployment bills at, and what a call costs in USD.

`price_for(entry)` resolves a config `models[]` entry once (at start or reload): the entry's own
`price:` wins; local servers (ollama, vLLM, TGI, llama.cpp, LocalAI, mock) are free; otherwise
the provider's model id is normalised and looked up in the built-in table (price_table.py,
prices as of 2025-11). Normalising strips what providers add around a model's name:
`models/` and `publishers/*/models/` paths (Gemini, Vertex), `accounts/*/models/` (Fireworks),
`@version` (Vertex), Bedrock region prefixes (`us.`, `eu.`, `apac.`, `global.`, ...), vendor
prefixes and `-v1:0` suffixes, and dates (`-20250514`, `-2024-08-06`); an id that still is not
listed falls back to the longest listed name it extends at a `-` boundary.

An unknown model resolves to None. The pipeline then bills the call at 0, marks the ledger row
as unpriced and logs one warning per deployment when the runtime is built, never per request
(docs/limits.md, Decisions).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

from ..types import Usage
from .estimate import DEFAULT_MAX_OUTPUT_TOKENS
from .price_table import FREE, TABLES, ModelPrice

if TYPE_CHECKING:
    from ..config.schema import ModelEntry

__all__ = ["FREE", "ModelPrice", "cost_header", "cost_usd", "lookup_price", "price_for", "worst_case_cost"]

PRICES_AS_OF = "2025-11"

LOCAL_PROVIDERS = frozenset({"ollama", "mock"})
LOCAL_PRESETS = frozenset({"vllm", "tgi", "llamacpp", "localai"})
# OpenRouter ids are `vendor/model`; it bills the vendor's own list price.
_OPENROUTER_VENDORS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "gemini",
    "mistralai": "mistral",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "x-ai": "xai",
}

_REGION = re.compile(r"^(?:us|eu|apac|global|us-gov|jp|au|ca)\.")
_REVISION = re.compile(r":\d+$")
_VERSION = re.compile(r"-v\d+$")
_DATE = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2})$")


def price_for(entry: ModelEntry) -> ModelPrice | None:
    """The price a deployment bills at: its config `price:`, else the built-in table, else None."""
    if entry.price is not None:
        p = entry.price
        return ModelPrice(
            p.input_per_mtok, p.output_per_mtok, p.cached_input_per_mtok, p.cache_write_per_mtok
        )
    found = lookup_price(entry.provider, entry.upstream_model, entry.preset)
    if found is None and entry.provider == "azure":
        # Azure's `model` is a deployment name the owner chose; the public name is often the model's.
        found = lookup_price("openai", entry.name)
    return found


@lru_cache(maxsize=4096)
def lookup_price(provider: str, model: str, preset: str | None = None) -> ModelPrice | None:
    """The built-in price of `model` as served by `provider` (and preset), or None if not listed."""
    if provider in LOCAL_PROVIDERS or (provider == "openai-compatible" and preset in LOCAL_PRESETS):
        return FREE
    m = model.strip().lower()
    if provider == "openai-compatible":
        if preset == "openrouter":
            m, _, variant = m.partition(":")  # `:free`, `:thinking`, `:online` ...
            if variant == "free":
                return FREE
            vendor, _, name = m.partition("/")
            namespace = _OPENROUTER_VENDORS.get(vendor)
            return _find(namespace, name) if namespace and name else None
        return _find(preset, m) if preset in TABLES else None
    if provider in ("openai", "azure"):
        return _find("openai", m)
    if provider == "bedrock":
        m = _REGION.sub("", m)
        if m.startswith("anthropic."):
            return _find("anthropic", m.removeprefix("anthropic."))
        return _find("bedrock", m)
    if provider == "vertex":
        return _find("anthropic" if "claude" in m else "gemini", m)
    if provider in TABLES:
        return _find(provider, m)
    return None


def candidates(model: str) -> list[str]:
    """`model` and its successively normalised forms, most specific first."""
    out = [model]

    def add(value: str) -> None:
        if value and value != out[-1]:
            out.append(value)

    m = model
    if "models/" in m:
        m = m.rsplit("models/", 1)[1]
        add(m)
    if "@" in m:
        m = m.split("@", 1)[0]
        add(m)
    for pattern in (_REGION, _REVISION, _VERSION, _DATE):
        m = pattern.sub("", m)
        add(m)
    return out


def _find(namespace: str | None, model: str) -> ModelPrice | None:
    table = TABLES.get(namespace or "")
    if table is None:
        return None
    names = candidates(model)
    if namespace == "anthropic":
        # OpenRouter and some SDKs write Claude versions with dots (claude-sonnet-4.5).
        names += [n.replace(".", "-") for n in names if "." in n]
    for name in names:
        if name in table:
            return table[name]
    for name in names:
        best = None
        for key in table:
            if (
                len(name) > len(key)
                and name[len(key)] == "-"
                and name.startswith(key)
                and (best is None or len(key) > len(best))
            ):
                best = key
        if best is not None:
            return table[best]
    return None


def cost_usd(usage: Usage, price: ModelPrice) -> float:
    """USD of one call. `prompt_tokens` includes cache reads and writes, each billed at its own rate."""
    p = price
    if p.above is not None and usage.prompt_tokens > p.above[0]:
        p = p.above[1]
    prompt = max(0, usage.prompt_tokens)
    cached = min(max(0, usage.cached_tokens), prompt)
    written = min(max(0, usage.cache_write_tokens), prompt - cached)
    uncached = prompt - cached - written
    total = (
        uncached * p.input
        + cached * (p.input if p.cached is None else p.cached)
        + written * (p.input if p.write is None else p.write)
        + max(0, usage.completion_tokens) * p.output
    )
    return total / 1_000_000


def worst_case_cost(price: ModelPrice, prompt_estimate: int, max_tokens: int | None) -> float:
    """The most a call can cost: every prompt token at the dearest input rate, all output allowed.

    `max_tokens` None (the caller set no limit) reserves DEFAULT_MAX_OUTPUT_TOKENS (4096).
    """
    p = price
    if p.above is not None and prompt_estimate > p.above[0]:
        p = p.above[1]
    output = DEFAULT_MAX_OUTPUT_TOKENS if max_tokens is None else max(0, max_tokens)
    input_rate = max(p.input, p.write or 0.0)
    return (max(0, prompt_estimate) * input_rate + output * p.output) / 1_000_000


def cost_header(cost: float) -> bytes:
    """The `x-sluicegate-cost-usd` value: plain decimal, no exponent, no trailing zeros."""
    text = f"{cost:.10f}".rstrip("0").rstrip(".")
    return (text or "0").encode()
