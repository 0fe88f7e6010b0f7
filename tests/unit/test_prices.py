"""Pricing: model-id normalisation for every provider, overrides, cost arithmetic and estimates."""

from __future__ import annotations

import pytest

from sluicegate.config.loader import parse_config
from sluicegate.config.schema import ModelEntry, Price
from sluicegate.errors import ConfigError
from sluicegate.spend.estimate import (
    DEFAULT_MAX_OUTPUT_TOKENS,
    IMAGE_TOKENS,
    count_text_tokens,
    estimate_tokens,
    max_output_tokens,
)
from sluicegate.spend.price_table import TABLES
from sluicegate.spend.prices import (
    FREE,
    ModelPrice,
    cost_header,
    cost_usd,
    lookup_price,
    price_for,
    worst_case_cost,
)
from sluicegate.types import Usage

OPENAI = TABLES["openai"]
ANTHROPIC = TABLES["anthropic"]
GEMINI = TABLES["gemini"]


@pytest.mark.parametrize(
    ("provider", "model", "preset", "expected"),
    [
        ("openai", "gpt-4o-mini", None, OPENAI["gpt-4o-mini"]),
        ("openai", "gpt-4o-2024-08-06", None, OPENAI["gpt-4o"]),
        ("openai", "gpt-4o-2024-05-13", None, OPENAI["gpt-4o-2024-05-13"]),
        ("openai", "gpt-5-mini-2025-08-07", None, OPENAI["gpt-5-mini"]),
        ("openai", "GPT-4.1-nano", None, OPENAI["gpt-4.1-nano"]),
        ("openai", "o4-mini-2025-04-16", None, OPENAI["o4-mini"]),
        ("openai", "chatgpt-4o-latest", None, OPENAI["chatgpt-4o"]),
        ("openai", "text-embedding-3-small", None, OPENAI["text-embedding-3-small"]),
        ("azure", "gpt-4.1", None, OPENAI["gpt-4.1"]),
        ("anthropic", "claude-sonnet-4-5-20250929", None, ANTHROPIC["claude-sonnet-4-5"]),
        ("anthropic", "claude-sonnet-4-5", None, ANTHROPIC["claude-sonnet-4-5"]),
        ("anthropic", "claude-opus-4-0", None, ANTHROPIC["claude-opus-4"]),
        ("anthropic", "claude-opus-4-1-20250805", None, ANTHROPIC["claude-opus-4-1"]),
        ("anthropic", "claude-3-5-haiku-latest", None, ANTHROPIC["claude-3-5-haiku"]),
        ("anthropic", "claude-haiku-4-5-20251001", None, ANTHROPIC["claude-haiku-4-5"]),
        ("bedrock", "anthropic.claude-3-5-sonnet-20241022-v2:0", None, ANTHROPIC["claude-3-5-sonnet"]),
        ("bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0", None, ANTHROPIC["claude-sonnet-4"]),
        ("bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0", None, ANTHROPIC["claude-sonnet-4-5"]),
        ("bedrock", "eu.anthropic.claude-3-7-sonnet-20250219-v1:0", None, ANTHROPIC["claude-3-7-sonnet"]),
        ("bedrock", "apac.anthropic.claude-3-haiku-20240307-v1:0", None, ANTHROPIC["claude-3-haiku"]),
        ("bedrock", "us.amazon.nova-pro-v1:0", None, TABLES["bedrock"]["amazon.nova-pro"]),
        ("bedrock", "amazon.nova-micro-v1:0", None, TABLES["bedrock"]["amazon.nova-micro"]),
        ("bedrock", "amazon.titan-embed-text-v2:0", None, TABLES["bedrock"]["amazon.titan-embed-text-v2"]),
        ("bedrock", "meta.llama3-3-70b-instruct-v1:0", None, TABLES["bedrock"]["meta.llama3-3-70b-instruct"]),
        ("bedrock", "openai.gpt-oss-120b-1:0", None, TABLES["bedrock"]["openai.gpt-oss-120b"]),
        ("vertex", "claude-sonnet-4-5@20250929", None, ANTHROPIC["claude-sonnet-4-5"]),
        ("vertex", "claude-3-5-sonnet-v2@20241022", None, ANTHROPIC["claude-3-5-sonnet"]),
        ("vertex", "gemini-2.5-pro", None, GEMINI["gemini-2.5-pro"]),
        ("vertex", "publishers/google/models/gemini-2.5-flash", None, GEMINI["gemini-2.5-flash"]),
        ("gemini", "models/gemini-2.0-flash-001", None, GEMINI["gemini-2.0-flash"]),
        ("gemini", "gemini-2.5-flash-lite-preview-09-2025", None, GEMINI["gemini-2.5-flash-lite"]),
        ("gemini", "gemini-2.5-flash-preview-05-20", None, GEMINI["gemini-2.5-flash"]),
        ("gemini", "gemini-3-pro-preview", None, GEMINI["gemini-3-pro"]),
        ("gemini", "gemini-embedding-001", None, GEMINI["gemini-embedding-001"]),
        ("mistral", "mistral-large-latest", None, TABLES["mistral"]["mistral-large"]),
        ("mistral", "mistral-small-2506", None, TABLES["mistral"]["mistral-small"]),
        ("mistral", "codestral-embed-2505", None, TABLES["mistral"]["codestral-embed"]),
        ("cohere", "command-a-03-2025", None, TABLES["cohere"]["command-a"]),
        ("cohere", "command-r-plus-08-2024", None, TABLES["cohere"]["command-r-plus"]),
        ("cohere", "command-r-08-2024", None, TABLES["cohere"]["command-r"]),
        ("cohere", "command-r7b-12-2024", None, TABLES["cohere"]["command-r7b"]),
        ("cohere", "embed-english-v3.0", None, TABLES["cohere"]["embed-english-v3.0"]),
        ("openai-compatible", "deepseek-chat", "deepseek", TABLES["deepseek"]["deepseek-chat"]),
        ("openai-compatible", "deepseek-reasoner", "deepseek", TABLES["deepseek"]["deepseek-reasoner"]),
        ("openai-compatible", "llama-3.3-70b-versatile", "groq", TABLES["groq"]["llama-3.3-70b-versatile"]),
        ("openai-compatible", "openai/gpt-oss-120b", "groq", TABLES["groq"]["openai/gpt-oss-120b"]),
        ("openai-compatible", "grok-4-0709", "xai", TABLES["xai"]["grok-4"]),
        ("openai-compatible", "grok-4-fast-reasoning", "xai", TABLES["xai"]["grok-4-fast"]),
        ("openai-compatible", "grok-code-fast-1", "xai", TABLES["xai"]["grok-code-fast"]),
        (
            "openai-compatible",
            "meta-llama/Llama-3.3-70B-Instruct-Turbo",
            "together",
            TABLES["together"]["meta-llama/llama-3.3-70b-instruct-turbo"],
        ),
        (
            "openai-compatible",
            "accounts/fireworks/models/llama-v3p3-70b-instruct",
            "fireworks",
            TABLES["fireworks"]["llama-v3p3-70b-instruct"],
        ),
        ("openai-compatible", "anthropic/claude-sonnet-4.5", "openrouter", ANTHROPIC["claude-sonnet-4-5"]),
        ("openai-compatible", "openai/gpt-4o-mini", "openrouter", OPENAI["gpt-4o-mini"]),
        ("openai-compatible", "google/gemini-2.5-pro", "openrouter", GEMINI["gemini-2.5-pro"]),
    ],
)
def test_provider_ids_normalise_to_their_family_price(
    provider: str, model: str, preset: str | None, expected: ModelPrice
) -> None:
    """Dates, regions, vendor prefixes, version suffixes and path prefixes do not hide a model's price."""
    assert lookup_price(provider, model, preset) == expected


@pytest.mark.parametrize(
    ("provider", "preset"),
    [("ollama", None), ("mock", None)]
    + [("openai-compatible", p) for p in ("vllm", "tgi", "llamacpp", "localai")],
)
def test_local_servers_are_free(provider: str, preset: str | None) -> None:
    """Models served locally cost nothing, whatever their name."""
    assert lookup_price(provider, "llama3.1:70b", preset) == FREE


def test_openrouter_free_variants_are_free() -> None:
    """OpenRouter's `:free` variants cost nothing; other variants bill as the base model."""
    assert lookup_price("openai-compatible", "deepseek/deepseek-chat:free", "openrouter") == FREE
    assert (
        lookup_price("openai-compatible", "anthropic/claude-sonnet-4:thinking", "openrouter")
        == ANTHROPIC["claude-sonnet-4"]
    )


@pytest.mark.parametrize(
    ("provider", "model", "preset"),
    [
        ("openai", "totally-new-model", None),
        ("openai", "gpt-4.5-preview", None),  # a dot is not a family boundary: not gpt-4
        ("anthropic", "claude-sonnet", None),  # a family name alone is ambiguous
        ("openai-compatible", "gpt-4o", None),  # no preset: the server is unknown
        ("openai-compatible", "meta-llama/llama-3.1-8b", "openrouter"),
        ("openai-compatible", "openrouter/auto", "openrouter"),
        ("bedrock", "ai21.jamba-1-5-large-v1:0", None),
        ("no-such-provider", "gpt-4o", None),
    ],
)
def test_unknown_models_have_no_price(provider: str, model: str, preset: str | None) -> None:
    """A model the table does not list resolves to None rather than a guess."""
    assert lookup_price(provider, model, preset) is None


def test_prefix_fallback_needs_a_dash_boundary() -> None:
    """A newer snapshot extends its family at a `-`, and the longest listed family wins."""
    assert lookup_price("anthropic", "claude-opus-4-10") == ANTHROPIC["claude-opus-4"]
    assert lookup_price("openai", "gpt-4o-mini-search-preview") == OPENAI["gpt-4o-mini"]
    assert lookup_price("openai", "gpt-4-turbo-preview") == OPENAI["gpt-4-turbo"]


def test_config_price_overrides_the_table() -> None:
    """A model's `price:` in the config wins over the built-in table, cache prices included."""
    entry = ModelEntry(
        name="gpt-4o",
        provider="openai",
        price=Price(
            input_per_mtok=1.0, output_per_mtok=2.0, cached_input_per_mtok=0.5, cache_write_per_mtok=1.5
        ),
    )
    assert price_for(entry) == ModelPrice(1.0, 2.0, 0.5, 1.5)


def test_deployment_without_price_uses_the_table_and_azure_falls_back_to_its_name() -> None:
    """Without `price:` the table prices the provider id; Azure falls back to the public model name."""
    assert price_for(ModelEntry(name="smart", provider="openai", model="gpt-4.1")) == OPENAI["gpt-4.1"]
    azure = ModelEntry(name="gpt-4o-mini", provider="azure", model="my-prod-deployment")
    assert price_for(azure) == OPENAI["gpt-4o-mini"]
    assert price_for(ModelEntry(name="x", provider="openai", model="my-finetune")) is None


def test_negative_config_prices_are_rejected_with_their_path() -> None:
    """A negative price in the config is an error quoting the field."""
    raw = {
        "models": [{"name": "m", "provider": "mock", "price": {"input_per_mtok": -1, "output_per_mtok": 1}}]
    }
    with pytest.raises(ConfigError, match=r"models\[0\]\.price.*input_per_mtok must be >= 0"):
        parse_config(raw)


def test_cost_bills_cached_tokens_at_the_cached_rate() -> None:
    """prompt_tokens includes cached tokens; only the uncached rest pays the full input rate."""
    usage = Usage(prompt_tokens=1000, completion_tokens=100, cached_tokens=400)
    # gpt-4o: 600 x $2.50 + 400 x $1.25 + 100 x $10 per million
    assert cost_usd(usage, OPENAI["gpt-4o"]) == pytest.approx(0.003)


def test_cost_bills_cache_writes_at_the_write_rate() -> None:
    """Anthropic cache reads and writes each pay their own rate; the remainder pays input."""
    usage = Usage(prompt_tokens=10_000, completion_tokens=500, cached_tokens=6000, cache_write_tokens=2000)
    # sonnet 4.5: 2000 x $3 + 6000 x $0.30 + 2000 x $3.75 + 500 x $15 per million
    assert cost_usd(usage, ANTHROPIC["claude-sonnet-4-5"]) == pytest.approx(0.0228)


def test_cost_without_cache_prices_bills_cached_tokens_as_input() -> None:
    """A price with no cached rate bills cached and written tokens as ordinary input."""
    usage = Usage(prompt_tokens=1000, completion_tokens=0, cached_tokens=500, cache_write_tokens=500)
    assert cost_usd(usage, ModelPrice(2.0, 8.0)) == pytest.approx(0.002)


def test_long_prompts_pay_the_long_context_tier() -> None:
    """Above the long-context threshold every token of the call pays the higher tier."""
    short = Usage(prompt_tokens=200_000, completion_tokens=1000)
    long = Usage(prompt_tokens=200_001, completion_tokens=1000)
    pro = GEMINI["gemini-2.5-pro"]
    assert cost_usd(short, pro) == pytest.approx((200_000 * 1.25 + 1000 * 10) / 1e6)
    assert cost_usd(long, pro) == pytest.approx((200_001 * 2.50 + 1000 * 15) / 1e6)


def test_cost_is_never_negative_on_inconsistent_usage() -> None:
    """Cached counts larger than the prompt (a provider quirk) cannot produce a negative cost."""
    usage = Usage(prompt_tokens=100, completion_tokens=10, cached_tokens=500, cache_write_tokens=50)
    assert cost_usd(usage, OPENAI["gpt-4o"]) == pytest.approx((100 * 1.25 + 10 * 10) / 1e6)


def test_worst_case_cost_reserves_the_default_output_cap() -> None:
    """Without max_tokens the reservation assumes the documented cap, at the dearest input rate."""
    assert worst_case_cost(OPENAI["gpt-4o"], 1000, 200) == pytest.approx((1000 * 2.5 + 200 * 10) / 1e6)
    assert worst_case_cost(OPENAI["gpt-4o"], 1000, None) == pytest.approx(
        (1000 * 2.5 + DEFAULT_MAX_OUTPUT_TOKENS * 10) / 1e6
    )
    # Claude: a prompt could be written to the cache, which costs more than plain input.
    assert worst_case_cost(ANTHROPIC["claude-sonnet-4-5"], 1000, 0) == pytest.approx(1000 * 3.75 / 1e6)


def test_cost_header_is_a_plain_decimal() -> None:
    """x-sluicegate-cost-usd never uses exponent notation or trailing zeros."""
    assert cost_header(0.003) == b"0.003"
    assert cost_header(1.5e-7) == b"0.00000015"
    assert cost_header(0.0) == b"0"
    assert cost_header(12.0) == b"12"


def test_estimate_counts_chat_text_overheads_images_and_tools() -> None:
    """A chat body's estimate is its text / 4 plus per-message overhead, images and tool schemas."""
    text = {"messages": [{"role": "user", "content": "x" * 400}]}
    assert estimate_tokens(text) == 100 + 4 + 3
    image = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "y" * 40},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            }
        ]
    }
    assert estimate_tokens(image) == 10 + IMAGE_TOKENS + 4 + 3
    tools = {"messages": [], "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}
    assert estimate_tokens(tools) > 3
    call = {
        "messages": [
            {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "a" * 80}}]}
        ]
    }
    assert estimate_tokens(call) == 21 + 4 + 3  # ("f" + 80 chars) / 4, rounded up


def test_estimate_covers_completions_embeddings_and_responses_bodies() -> None:
    """`prompt`, `input` (strings, token ids, Responses items) and `instructions` are all counted."""
    assert estimate_tokens({"prompt": "z" * 80}) == 20
    assert estimate_tokens({"input": ["a" * 40, "b" * 40]}) == 20
    assert estimate_tokens({"input": [[1, 2, 3], [4, 5]]}) == 5
    responses = {
        "instructions": "i" * 40,
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "q" * 40}]}],
    }
    assert estimate_tokens(responses) == 20 + 4


def test_max_output_tokens_reads_every_spelling_and_multiplies_choices() -> None:
    """max_completion_tokens, max_tokens and max_output_tokens are honoured, times `n`."""
    assert max_output_tokens({"max_tokens": 100}) == 100
    assert max_output_tokens({"max_completion_tokens": 50, "max_tokens": 100}) == 50
    assert max_output_tokens({"max_output_tokens": 70}) == 70
    assert max_output_tokens({"max_tokens": 100, "n": 3}) == 300
    assert max_output_tokens({}) is None
    assert max_output_tokens({"n": 2}) == 2 * DEFAULT_MAX_OUTPUT_TOKENS
    assert max_output_tokens({"max_tokens": True}) is None


def test_count_text_tokens_rounds_up() -> None:
    """Streamed text without provider usage is counted as characters / 4, rounded up."""
    assert count_text_tokens("") == 0
    assert count_text_tokens("abcde") == 2


def test_every_table_entry_is_a_sane_price() -> None:
    """No listed price is negative, and cache reads never cost more than plain input."""
    for namespace, table in TABLES.items():
        for name, price in table.items():
            assert name == name.lower(), (namespace, name)
            assert price.input >= 0 and price.output >= 0, (namespace, name)
            if price.cached is not None:
                assert price.cached <= price.input, (namespace, name)
