"""The built-in price table: USD per million tokens, as publicly listed by each provider.

Prices as of 2025-11 (the providers' public pricing pages at that date). Providers change
prices and ship models faster than releases: anything missing or changed is set per model in
the config (`price: {input_per_mtok, output_per_mtok, cached_input_per_mtok,
cache_write_per_mtok}`), which always wins over this table.

Tables are per billing namespace, because one open model costs differently on each host. Keys
are lower-case provider model ids without dates or version suffixes; prices.py normalises an id
and falls back to the longest key that is a prefix of it at a `-` boundary, so
`gpt-4o-2024-08-06`, `claude-sonnet-4-5-20250929` and `gemini-2.0-flash-001` find their family.
An exact dated id (e.g. `gpt-4o-2024-05-13`) is listed only where that snapshot is priced apart.

Conventions: `cached` is the price of a cache read (Anthropic, OpenAI, Gemini, DeepSeek, xAI
discounts); `write` is Anthropic's 5-minute cache write (1.25x input; 1-hour writes cost 2x and
are billed here at the 5-minute rate). `above` is a long-context tier: prompts longer than its
threshold are billed at its prices for the whole call (Gemini Pro, Claude Sonnet 4/4.5 1M beta).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens. None for `cached`/`write` means "billed as ordinary input"."""

    input: float
    output: float
    cached: float | None = None
    write: float | None = None
    above: tuple[int, ModelPrice] | None = None  # (prompt tokens threshold, price beyond it)


def _p(
    input: float,
    output: float,
    cached: float | None = None,
    write: float | None = None,
    above: tuple[int, ModelPrice] | None = None,
) -> ModelPrice:
    return ModelPrice(input, output, cached, write, above)


def _claude(input: float, output: float, above: tuple[int, ModelPrice] | None = None) -> ModelPrice:
    # Anthropic: cache reads cost 0.1x input, 5-minute cache writes 1.25x.
    return ModelPrice(input, output, round(input * 0.1, 6), round(input * 1.25, 6), above)


FREE = ModelPrice(0.0, 0.0, 0.0, 0.0)

_SONNET_LONG = (200_000, _claude(6.0, 22.5))

TABLES: dict[str, dict[str, ModelPrice]] = {
    "openai": {
        "gpt-5.1": _p(1.25, 10.0, 0.125),
        "gpt-5.1-codex-mini": _p(0.25, 2.0, 0.025),
        "gpt-5": _p(1.25, 10.0, 0.125),
        "gpt-5-codex-mini": _p(0.25, 2.0, 0.025),
        "gpt-5-mini": _p(0.25, 2.0, 0.025),
        "gpt-5-nano": _p(0.05, 0.40, 0.005),
        "gpt-5-pro": _p(15.0, 120.0),
        "gpt-4.1": _p(2.0, 8.0, 0.50),
        "gpt-4.1-mini": _p(0.40, 1.60, 0.10),
        "gpt-4.1-nano": _p(0.10, 0.40, 0.025),
        "gpt-4o": _p(2.50, 10.0, 1.25),
        "gpt-4o-2024-05-13": _p(5.0, 15.0),
        "gpt-4o-mini": _p(0.15, 0.60, 0.075),
        "chatgpt-4o": _p(5.0, 15.0),
        "o1": _p(15.0, 60.0, 7.50),
        "o1-mini": _p(1.10, 4.40, 0.55),
        "o1-pro": _p(150.0, 600.0),
        "o3": _p(2.0, 8.0, 0.50),
        "o3-mini": _p(1.10, 4.40, 0.55),
        "o3-pro": _p(20.0, 80.0),
        "o3-deep-research": _p(10.0, 40.0, 2.50),
        "o4-mini": _p(1.10, 4.40, 0.275),
        "o4-mini-deep-research": _p(2.0, 8.0, 0.50),
        "codex-mini": _p(1.50, 6.0, 0.375),
        "gpt-4-turbo": _p(10.0, 30.0),
        "gpt-4": _p(30.0, 60.0),
        "gpt-3.5-turbo": _p(0.50, 1.50),
        "gpt-3.5-turbo-instruct": _p(1.50, 2.0),
        "text-embedding-3-small": _p(0.02, 0.0),
        "text-embedding-3-large": _p(0.13, 0.0),
        "text-embedding-ada-002": _p(0.10, 0.0),
        "omni-moderation": FREE,
        "text-moderation": FREE,
    },
    "anthropic": {
        "claude-opus-4-5": _claude(5.0, 25.0),
        "claude-opus-4-1": _claude(15.0, 75.0),
        "claude-opus-4": _claude(15.0, 75.0),
        "claude-sonnet-4-5": _claude(3.0, 15.0, _SONNET_LONG),
        "claude-sonnet-4": _claude(3.0, 15.0, _SONNET_LONG),
        "claude-haiku-4-5": _claude(1.0, 5.0),
        "claude-3-7-sonnet": _claude(3.0, 15.0),
        "claude-3-5-sonnet": _claude(3.0, 15.0),
        "claude-3-5-haiku": _claude(0.80, 4.0),
        "claude-3-opus": _claude(15.0, 75.0),
        "claude-3-haiku": ModelPrice(0.25, 1.25, 0.03, 0.30),
    },
    "gemini": {
        "gemini-3-pro": _p(2.0, 12.0, 0.20, above=(200_000, _p(4.0, 18.0, 0.40))),
        "gemini-2.5-pro": _p(1.25, 10.0, 0.125, above=(200_000, _p(2.50, 15.0, 0.25))),
        "gemini-2.5-flash": _p(0.30, 2.50, 0.03),
        "gemini-2.5-flash-image": _p(0.30, 30.0),
        "gemini-2.5-flash-lite": _p(0.10, 0.40, 0.01),
        "gemini-flash-latest": _p(0.30, 2.50, 0.03),  # Google's alias of the newest 2.5 Flash
        "gemini-flash-lite-latest": _p(0.10, 0.40, 0.01),
        "gemini-2.0-flash": _p(0.10, 0.40, 0.025),
        "gemini-2.0-flash-lite": _p(0.075, 0.30),
        "gemini-embedding-001": _p(0.15, 0.0),
    },
    "mistral": {
        "mistral-large": _p(2.0, 6.0),
        "mistral-medium": _p(0.40, 2.0),
        "mistral-small": _p(0.10, 0.30),
        "magistral-medium": _p(2.0, 5.0),
        "magistral-small": _p(0.50, 1.50),
        "codestral": _p(0.30, 0.90),
        "devstral-medium": _p(0.40, 2.0),
        "devstral-small": _p(0.10, 0.30),
        "ministral-8b": _p(0.10, 0.10),
        "ministral-3b": _p(0.04, 0.04),
        "pixtral-large": _p(2.0, 6.0),
        "pixtral-12b": _p(0.15, 0.15),
        "open-mistral-nemo": _p(0.15, 0.15),
        "mistral-nemo": _p(0.15, 0.15),
        "mistral-saba": _p(0.20, 0.60),
        "mistral-embed": _p(0.10, 0.0),
        "codestral-embed": _p(0.15, 0.0),
    },
    "cohere": {
        "command-a": _p(2.50, 10.0),
        "command-r-plus": _p(2.50, 10.0),
        "command-r": _p(0.15, 0.60),
        "command-r7b": _p(0.0375, 0.15),
        "embed-v4.0": _p(0.12, 0.0),
        "embed-english-v3.0": _p(0.10, 0.0),
        "embed-multilingual-v3.0": _p(0.10, 0.0),
        "embed-english-light-v3.0": _p(0.10, 0.0),
        "embed-multilingual-light-v3.0": _p(0.10, 0.0),
    },
    "deepseek": {
        # V3.2: one price for both modes; `cached` is DeepSeek's "cache hit" input.
        "deepseek-chat": _p(0.28, 0.42, 0.028),
        "deepseek-reasoner": _p(0.28, 0.42, 0.028),
    },
    "xai": {
        "grok-4": _p(3.0, 15.0, 0.75),
        "grok-4-fast": _p(0.20, 0.50, 0.05),
        "grok-4-1-fast": _p(0.20, 0.50, 0.05),
        "grok-code-fast": _p(0.20, 1.50, 0.02),
        "grok-3": _p(3.0, 15.0, 0.75),
        "grok-3-mini": _p(0.30, 0.50, 0.075),
        "grok-2-vision": _p(2.0, 10.0),
        "grok-2": _p(2.0, 10.0),
    },
    "groq": {
        "llama-3.3-70b-versatile": _p(0.59, 0.79),
        "llama-3.1-8b-instant": _p(0.05, 0.08),
        "meta-llama/llama-4-scout-17b-16e-instruct": _p(0.11, 0.34),
        "meta-llama/llama-4-maverick-17b-128e-instruct": _p(0.20, 0.60),
        "openai/gpt-oss-120b": _p(0.15, 0.75),
        "openai/gpt-oss-20b": _p(0.10, 0.50),
        "moonshotai/kimi-k2-instruct": _p(1.0, 3.0),
        "qwen/qwen3-32b": _p(0.29, 0.59),
        "deepseek-r1-distill-llama-70b": _p(0.75, 0.99),
        "gemma2-9b-it": _p(0.20, 0.20),
    },
    "together": {
        "meta-llama/llama-3.3-70b-instruct-turbo": _p(0.88, 0.88),
        "meta-llama/meta-llama-3.1-8b-instruct-turbo": _p(0.18, 0.18),
        "meta-llama/meta-llama-3.1-70b-instruct-turbo": _p(0.88, 0.88),
        "meta-llama/meta-llama-3.1-405b-instruct-turbo": _p(3.50, 3.50),
        "meta-llama/llama-4-maverick-17b-128e-instruct-fp8": _p(0.27, 0.85),
        "meta-llama/llama-4-scout-17b-16e-instruct": _p(0.18, 0.59),
        "deepseek-ai/deepseek-v3": _p(1.25, 1.25),
        "deepseek-ai/deepseek-r1": _p(3.0, 7.0),
        "qwen/qwen2.5-72b-instruct-turbo": _p(1.20, 1.20),
        "qwen/qwen3-235b-a22b-instruct-2507-tput": _p(0.20, 0.60),
        "openai/gpt-oss-120b": _p(0.15, 0.60),
        "openai/gpt-oss-20b": _p(0.05, 0.20),
        "moonshotai/kimi-k2-instruct": _p(1.0, 3.0),
        "mistralai/mixtral-8x7b-instruct-v0.1": _p(0.60, 0.60),
    },
    "fireworks": {
        "llama-v3p3-70b-instruct": _p(0.90, 0.90),
        "llama-v3p1-8b-instruct": _p(0.20, 0.20),
        "llama-v3p1-70b-instruct": _p(0.90, 0.90),
        "llama-v3p1-405b-instruct": _p(3.0, 3.0),
        "llama4-maverick-instruct-basic": _p(0.22, 0.88),
        "llama4-scout-instruct-basic": _p(0.15, 0.60),
        "deepseek-v3": _p(0.90, 0.90),
        "deepseek-r1": _p(3.0, 8.0),
        "qwen3-235b-a22b": _p(0.22, 0.88),
        "gpt-oss-120b": _p(0.15, 0.60),
        "gpt-oss-20b": _p(0.07, 0.30),
        "kimi-k2-instruct": _p(0.60, 2.50),
    },
    # Bedrock models other than Anthropic's (those bill as on Anthropic: the "anthropic" table),
    # keyed `vendor.model` as in Bedrock ids, without region prefix or `-v1:0` suffix.
    "bedrock": {
        "amazon.nova-premier": _p(2.50, 12.50, 0.625),
        "amazon.nova-pro": _p(0.80, 3.20, 0.20),
        "amazon.nova-lite": _p(0.06, 0.24, 0.015),
        "amazon.nova-micro": _p(0.035, 0.14, 0.00875),
        "amazon.titan-embed-text-v2": _p(0.02, 0.0),
        "amazon.titan-embed-text-v1": _p(0.10, 0.0),
        "meta.llama3-3-70b-instruct": _p(0.72, 0.72),
        "meta.llama3-1-70b-instruct": _p(0.72, 0.72),
        "meta.llama3-1-8b-instruct": _p(0.22, 0.22),
        "meta.llama4-maverick-17b-instruct": _p(0.24, 0.97),
        "meta.llama4-scout-17b-instruct": _p(0.17, 0.66),
        "mistral.mistral-large-2407": _p(2.0, 6.0),
        "mistral.pixtral-large-2502": _p(2.0, 6.0),
        "deepseek.r1": _p(1.35, 5.40),
        "openai.gpt-oss-120b": _p(0.15, 0.60),
        "openai.gpt-oss-20b": _p(0.07, 0.30),
        "cohere.command-r-plus": _p(3.0, 15.0),
        "cohere.command-r": _p(0.50, 1.50),
        "cohere.embed-english-v3": _p(0.10, 0.0),
        "cohere.embed-multilingual-v3": _p(0.10, 0.0),
    },
}
