"""What a fake provider does on its next call: the scripted behaviours tests enqueue.

Each fake keeps a FIFO of behaviours; every chat call that passes authentication and
validation takes the next one (or the fake's default when the queue is empty). Values are
given in the provider's own vocabulary, so a test can check that the gateway translates them:
``finish_reason`` is OpenAI's ``stop``/``length``/... on ``FakeOpenAI`` and Anthropic's
``end_turn``/``max_tokens``/... on ``FakeAnthropic``, and token counts are the provider's own
usage fields (see ``Reply``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, TypeAlias


@dataclass(frozen=True)
class Reply:
    """A normal completion.

    ``text`` defaults to ``"fake: " + <last user message text>``. ``prompt_tokens`` is the
    provider's own input count: OpenAI ``usage.prompt_tokens`` (which *includes* cached
    tokens) or Anthropic ``usage.input_tokens`` (which *excludes* cache reads and writes).
    ``cached_tokens`` is OpenAI ``prompt_tokens_details.cached_tokens`` / Anthropic
    ``cache_read_input_tokens``; ``cache_creation_tokens`` is Anthropic-only
    (``cache_creation_input_tokens``). Unset counts are deterministic word-count estimates.
    """

    text: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    cache_creation_tokens: int = 0


@dataclass(frozen=True)
class ToolCalls:
    """The model calls ``calls`` (name, arguments) in order, optionally after some ``text``."""

    calls: list[tuple[str, dict[str, Any]]]
    text: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class Error:
    """An HTTP error before any body byte; ``body`` defaults to the provider's own error shape."""

    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] | None = None


@dataclass(frozen=True)
class SlowFirstToken:
    """Stall ``seconds`` before the first body byte, then behave like ``then`` (default ``Reply()``).

    Non-streamed calls send nothing at all during the stall; streamed calls send the response
    headers first and stall before the first event, like a model with a slow time-to-first-token.
    """

    seconds: float
    then: Reply | ToolCalls | None = None


@dataclass(frozen=True)
class CutStream:
    """Abort the TCP connection mid-response, without the terminal event.

    Streamed calls get the headers and the first ``after_events`` events of ``then``'s normal
    stream (default ``Reply()``); non-streamed calls get the headers and, if ``after_events`` is
    positive, half of the body.
    """

    after_events: int
    then: Reply | ToolCalls | None = None


Behaviour: TypeAlias = Reply | ToolCalls | Error | SlowFirstToken | CutStream


@dataclass(frozen=True)
class Outcome:
    """A successful model turn resolved from a behaviour and the request (internal to the fakes)."""

    text: str | None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_creation_tokens: int = 0


_WORD = re.compile(r"\S+")
_PIECE = re.compile(r"\s*\S+")


def text_of(content: Any) -> str:
    """The text of a string content or of the ``text`` items of a content list (OpenAI parts,
    Anthropic blocks, Cohere items), space-joined; anything else has none."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            item.get("text") for item in content if isinstance(item, dict) and item.get("type") == "text"
        ]
        return " ".join(text for text in texts if isinstance(text, str))
    return ""


def estimate_tokens(*texts: str) -> int:
    """Count whitespace-separated words: deterministic, so tests can predict usage."""
    return sum(len(_WORD.findall(text)) for text in texts)


def split_text(text: str) -> list[str]:
    """Split ``text`` into several stream deltas (words with their leading space).

    A single word is halved so that every non-trivial text arrives in at least two deltas and
    a gateway that keeps only the first or last delta is caught.
    """
    pieces = _PIECE.findall(text)
    if "".join(pieces) != text:  # trailing whitespace is not covered by the word pattern
        pieces.append(text[len("".join(pieces)) :])
    if len(pieces) == 1 and len(text) >= 2:
        middle = len(text) // 2
        pieces = [text[:middle], text[middle:]]
    return [piece for piece in pieces if piece]


def split_fragments(payload: str, parts: int = 3) -> list[str]:
    """Split a JSON string into at least two fragments at arbitrary (non-token) boundaries."""
    parts = max(2, min(parts, len(payload)))
    size = -(-len(payload) // parts)
    return [payload[i : i + size] for i in range(0, len(payload), size)]
