"""Cheap token estimates for the hot path: no tokenizer, just characters / 4 plus fixed overheads.

Used where a number is needed before the provider has counted: the tokens a call reserves
against tpm limits, its worst-case cost reserved against budgets, and the tokens of a stream
whose provider sent no usage (the ledger row then says the count was estimated). English text
averages about four characters per token on every current tokenizer; code and non-Latin scripts
run denser, which is why reservations are settled against real usage whenever there is any.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

CHARS_PER_TOKEN = 4
# Role and separator tokens each chat message costs on top of its text (OpenAI's format: 3-4).
MESSAGE_OVERHEAD = 4
# Tokens priming the reply (`<|start|>assistant<|message|>` and friends).
REPLY_OVERHEAD = 3
# One image: a 1024x1024 picture at OpenAI's "high" detail; other providers land near it.
IMAGE_TOKENS = 765
# Output reserved for a call that sets no max_tokens: budgets and tpm hold this much until settle.
DEFAULT_MAX_OUTPUT_TOKENS = 4096

_MAX_KEYS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


def count_text_tokens(text: str) -> int:
    """Estimated tokens of a piece of text (e.g. a stream's output when no usage arrived)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimate_tokens(body: Mapping[str, Any]) -> int:
    """Estimated prompt tokens of a request body: chat `messages`, `prompt`, `input`, tools, system."""
    chars = 0
    extra = 0
    messages = body.get("messages")
    if isinstance(messages, list):
        extra += REPLY_OVERHEAD
        for message in messages:
            if isinstance(message, Mapping):
                extra += MESSAGE_OVERHEAD
                c, e = _message(message)
                chars += c
                extra += e
    for field in ("system", "instructions", "prompt", "input"):
        value = body.get(field)
        if value is not None:
            c, e = _content(value)
            chars += c
            extra += e
    tools = body.get("tools")
    if tools:
        chars += len(orjson.dumps(tools))
    return extra + math.ceil(chars / CHARS_PER_TOKEN)


def max_output_tokens(body: Mapping[str, Any]) -> int | None:
    """The output the caller allows (times `n` choices), or None when it set no limit."""
    limit = None
    for key in _MAX_KEYS:
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            limit = value
            break
    n = body.get("n")
    choices = n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1
    if limit is None:
        return DEFAULT_MAX_OUTPUT_TOKENS * choices if choices > 1 else None
    return limit * choices


def _message(message: Mapping[str, Any]) -> tuple[int, int]:
    chars, extra = _content(message.get("content"))
    name = message.get("name")
    if isinstance(name, str):
        chars += len(name)
    tool_calls = message.get("tool_calls")
    if isinstance(tool_calls, list):
        for call in tool_calls:
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping):
                chars += len(str(function.get("name") or "")) + len(str(function.get("arguments") or ""))
    return chars, extra


def _content(value: Any) -> tuple[int, int]:
    """(characters, extra tokens) of a content value: a string, token ids, or a list of parts."""
    if isinstance(value, str):
        return len(value), 0
    if not isinstance(value, list):
        return 0, 0
    chars = 0
    extra = 0
    for part in value:
        if isinstance(part, str):
            chars += len(part)
        elif isinstance(part, int):
            extra += 1  # a token id (completions/embeddings accept pre-tokenised input)
        elif isinstance(part, list):
            c, e = _content(part)
            chars += c
            extra += e
        elif isinstance(part, Mapping):
            c, e = _part(part)
            chars += c
            extra += e
    return chars, extra


def _part(part: Mapping[str, Any]) -> tuple[int, int]:
    text = part.get("text")
    if isinstance(text, str):
        return len(text), 0
    kind = part.get("type")
    if isinstance(kind, str) and "image" in kind:
        return 0, IMAGE_TOKENS
    if "content" in part:  # tool results, Responses input items, nested messages
        c, e = _content(part.get("content"))
        return c, e + (MESSAGE_OVERHEAD if "role" in part else 0)
    # Anything else (tool calls in Anthropic or Responses shape, audio, files): its JSON size.
    return len(orjson.dumps(part, default=str)), 0
