"""Fallbacks: which model group a call moves to when its own cannot serve it (SPEC §3, §8).

Three chains, each a list of model names per model in `router:`:
- `fallbacks` — tried in order once the primary group is exhausted (every allowed attempt failed
  with a retryable error). A request may replace the list (`x-sluicegate-fallbacks` or
  `sluicegate.fallbacks`; empty = none).
- `context_window_fallbacks` — a prompt whose estimated size exceeds the group's `context_window`
  skips straight to these; so does a provider's "context length exceeded" refusal.
- `content_policy_fallbacks` — a provider's content-filter refusal (a 400 coded `content_filter` /
  `content_policy_violation`, or a complete reply whose `finish_reason` is `content_filter`)
  moves to these.
Fallbacks are one level deep: a fallback group's own fallbacks are not followed, and no group is
tried twice in one request. Groups the caller's key may not use are skipped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from ..errors import UpstreamStatusError

_shared_estimate: Callable[[dict[str, Any]], int] | None
try:
    from ..spend.estimate import estimate_tokens as _shared_estimate
except ImportError:  # built in parallel with this module; the local estimator stands in
    _shared_estimate = None

CONTENT_FILTER_CODES = frozenset({"content_filter", "content_policy_violation", "content_filtered"})
CONTEXT_CODES = frozenset(
    {"context_length_exceeded", "model_context_window_exceeded", "string_above_max_length"}
)
_CONTEXT_MESSAGE = re.compile(
    r"context length|context window|prompt is too long|too many tokens|maximum context|input is too long",
    re.IGNORECASE,
)
# Per message: role and framing tokens, as OpenAI's cookbook counts them.
_MESSAGE_OVERHEAD = 4
_REQUEST_OVERHEAD = 3


def is_content_filter(error: BaseException) -> bool:
    return (
        isinstance(error, UpstreamStatusError)
        and 400 <= error.upstream_status < 500
        and error.code in CONTENT_FILTER_CODES
    )


def is_context_overflow(error: BaseException) -> bool:
    if not isinstance(error, UpstreamStatusError) or error.upstream_status not in (400, 413, 422):
        return False
    return error.code in CONTEXT_CODES or bool(_CONTEXT_MESSAGE.search(error.message))


def _text_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    total += len(text)
                elif part.get("type") in ("image_url", "input_image", "image"):
                    total += 85 * 4  # a low-detail image costs ~85 tokens; sizes vary by provider
            elif isinstance(part, str):
                total += len(part)
        return total
    return 0


def _local_estimate(body: dict[str, Any]) -> int:
    """Prompt tokens of a chat, completions or embeddings body: ~4 characters a token plus framing."""
    chars = 0
    overhead = _REQUEST_OVERHEAD
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                overhead += _MESSAGE_OVERHEAD
                chars += _text_chars(message.get("content"))
                calls = message.get("tool_calls")
                if calls:
                    chars += len(str(calls))
    for key in ("prompt", "input"):
        value = body.get(key)
        if isinstance(value, str):
            chars += len(value)
        elif isinstance(value, list):
            chars += sum(
                len(v) if isinstance(v, str) else (len(v) * 4 if isinstance(v, list) else 4) for v in value
            )
    tools = body.get("tools")
    if tools:
        chars += len(str(tools))
    return overhead + math.ceil(chars / 4)


def estimate_tokens(body: dict[str, Any]) -> int:
    """The prompt's size in tokens, estimated with the limits' estimator (spend/estimate.py) when present."""
    if _shared_estimate is None:
        return _local_estimate(body)
    try:
        return int(_shared_estimate(body))
    except Exception:  # an estimator bug must not break routing
        return _local_estimate(body)
