"""Opaque keyset-pagination cursors: the sort key of the last row of a page, base64url JSON.

Keyset rather than OFFSET: a page costs the same at row 10 and at row 10 million, and rows
inserted while a client pages do not shift what it sees.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson


class CursorError(ValueError):
    """A cursor that this store did not issue (or for another listing)."""


def encode_cursor(*values: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(values))).decode().rstrip("=")


def decode_cursor(cursor: str, types: tuple[type, ...]) -> tuple[Any, ...]:
    """The values of a cursor made by `encode_cursor`; CursorError if it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (binascii.Error, orjson.JSONDecodeError, UnicodeEncodeError, ValueError) as exc:
        raise CursorError("malformed cursor") from exc
    if (
        not isinstance(values, list)
        or len(values) != len(types)
        or not all(isinstance(v, t) and not isinstance(v, bool) for v, t in zip(values, types, strict=True))
    ):
        raise CursorError("malformed cursor")
    return tuple(values)
