"""The caller of a request, as every later pipeline step sees it.

Today the only credential is the master key; virtual keys (issue #4) resolve to the same
`Principal` with their own allowlist, limits and owner ids, so nothing downstream changes.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from ..errors import AuthenticationError, ModelNotAllowedError


@dataclass(frozen=True, slots=True)
class Principal:
    kind: str  # "master" | "virtual"
    key_id: str | None = None
    is_admin: bool = False
    allowed_models: frozenset[str] | None = None  # None = every model
    team_id: str | None = None
    user_id: str | None = None

    def check_model(self, model: str) -> None:
        if self.allowed_models is not None and model not in self.allowed_models:
            raise ModelNotAllowedError(f"this key is not allowed to use model '{model}'", param="model")


MASTER = Principal(kind="master", key_id="master", is_admin=True)


def extract_key(authorization: bytes | None, x_api_key: bytes | None) -> str | None:
    """The caller's key from `Authorization: Bearer <key>` or `x-api-key: <key>` (Anthropic style)."""
    if authorization:
        scheme, _, value = authorization.partition(b" ")
        if scheme.lower() == b"bearer" and value.strip():
            return value.strip().decode("latin-1")
    if x_api_key:
        return x_api_key.strip().decode("latin-1")
    return None


class Authenticator:
    def __init__(self, master_key: str | None) -> None:
        self._master = master_key.encode() if master_key else None

    def authenticate(self, key: str | None) -> Principal:
        if key is None:
            raise AuthenticationError(
                "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'"
            )
        # Constant-time comparison: a key check must not leak how many leading bytes matched.
        if self._master is not None and hmac.compare_digest(key.encode("latin-1"), self._master):
            return MASTER
        raise AuthenticationError("invalid API key")
