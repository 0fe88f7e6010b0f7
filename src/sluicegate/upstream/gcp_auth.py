"""OAuth2 access tokens for Google Cloud (Vertex AI), fetched through a deployment's transport.

Two credential shapes are accepted, both the JSON text Google hands out:
- `service_account`: a signed JWT (RS256, the account's private key) is exchanged at the JSON's
  `token_uri` for an access token (the OAuth 2.0 JWT-bearer grant, RFC 7523);
- `authorized_user` (what `gcloud auth application-default login` writes): its refresh token is
  exchanged at the token endpoint.

`TokenSource` keeps the current token and refreshes it about five minutes before it expires,
one refresh at a time however many requests are waiting. If a refresh fails while the old token
is still valid, the old token is used and the next call tries again; once it has expired the
failure is the caller's error. The private key is parsed once, at config load.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..errors import GatewayError, UpstreamError
from ..types import UpstreamRequest

log = logging.getLogger("sluicegate")

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_JWT_LIFETIME_S = 3600  # the longest Google accepts
_REFRESH_MARGIN_S = 300.0  # refresh this long before expiry, so no request goes out on a dying token
_DEFAULT_EXPIRES_S = 3600
_RETRY_AFTER_FAILURE_S = 30.0
_TOKEN_TIMEOUT_S = 30.0
_CONNECT_TIMEOUT_S = 10.0
_AUTH_ERROR = "upstream_auth_error"


class CredentialsError(ValueError):
    """The credentials JSON is unusable; the message says why (the config loader adds the field path)."""


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    client_email: str
    private_key: rsa.RSAPrivateKey
    private_key_id: str | None
    token_uri: str
    project_id: str | None


@dataclass(frozen=True, slots=True)
class AuthorizedUser:
    client_id: str
    client_secret: str
    refresh_token: str
    token_uri: str
    project_id: str | None


Credentials = ServiceAccount | AuthorizedUser


def _required_str(info: dict[str, Any], key: str, kind: str) -> str:
    value = info.get(key)
    if not isinstance(value, str) or not value:
        raise CredentialsError(f"a {kind} JSON needs a non-empty string {key!r}")
    return value


def _optional_str(info: dict[str, Any], key: str) -> str | None:
    value = info.get(key)
    return value if isinstance(value, str) and value else None


def parse_credentials(text: str) -> Credentials:
    """Service-account or authorized-user JSON text -> credentials; CredentialsError says what is wrong."""
    try:
        info = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise CredentialsError(f"not valid JSON ({exc})") from None
    if not isinstance(info, dict):
        raise CredentialsError("must be a JSON object (a service-account key file)")
    kind = info.get("type", "service_account")
    token_uri = _optional_str(info, "token_uri") or DEFAULT_TOKEN_URI
    if kind == "service_account":
        email = _required_str(info, "client_email", kind)
        pem = _required_str(info, "private_key", kind)
        try:
            # The consistency check costs ~70 ms per key (at every start and reload); it guards
            # against keys crafted by an attacker, and this one is the operator's own credential.
            key = serialization.load_pem_private_key(
                pem.encode(), password=None, unsafe_skip_rsa_key_validation=True
            )
        except (ValueError, TypeError) as exc:
            # The library's message never contains key material.
            raise CredentialsError(f"private_key is not a readable PEM private key ({exc})") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise CredentialsError("private_key must be an RSA key (service-account keys are)")
        return ServiceAccount(
            client_email=email,
            private_key=key,
            private_key_id=_optional_str(info, "private_key_id"),
            token_uri=token_uri,
            project_id=_optional_str(info, "project_id"),
        )
    if kind == "authorized_user":
        return AuthorizedUser(
            client_id=_required_str(info, "client_id", kind),
            client_secret=_required_str(info, "client_secret", kind),
            refresh_token=_required_str(info, "refresh_token", kind),
            token_uri=token_uri,
            project_id=_optional_str(info, "quota_project_id"),
        )
    raise CredentialsError(
        f"credential type {kind!r} is not supported (use a 'service_account' key file or "
        "'authorized_user' credentials)"
    )


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def make_assertion(account: ServiceAccount, now: float, scope: str = SCOPE) -> str:
    """The signed JWT a service account exchanges for an access token (RS256)."""
    header: dict[str, Any] = {"alg": "RS256", "typ": "JWT"}
    if account.private_key_id:
        header["kid"] = account.private_key_id
    issued = int(now)
    claims = {
        "iss": account.client_email,
        "scope": scope,
        "aud": account.token_uri,
        "iat": issued,
        "exp": issued + _JWT_LIFETIME_S,
    }
    signing_input = _b64url(orjson.dumps(header)) + b"." + _b64url(orjson.dumps(claims))
    signature = account.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return (signing_input + b"." + _b64url(signature)).decode()


def _who(credentials: Credentials) -> str:
    if isinstance(credentials, ServiceAccount):
        return f"service account {credentials.client_email}"
    return f"authorized user (client {credentials.client_id})"


def _endpoint_error(body: bytes) -> str:
    """`{"error": "invalid_grant", "error_description": "..."}` (OAuth) or Google's envelope -> text."""
    try:
        parsed = orjson.loads(body) if body.strip() else None
    except orjson.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict):  # Google's {"error": {"code", "message", "status"}}
            return str(error.get("message") or error.get("status") or "")
        description = parsed.get("error_description")
        if isinstance(error, str):
            return f"{error}: {description}" if isinstance(description, str) and description else error
    return " ".join(body[:300].decode("utf-8", "replace").split())


class TokenSource:
    """A cached access token for one set of credentials; see the module docstring."""

    __slots__ = (
        "_clock",
        "_expires_at",
        "_failure",
        "_failures",
        "_lock",
        "_refresh_at",
        "_token",
        "credentials",
        "scope",
    )

    def __init__(
        self, credentials: Credentials, *, scope: str = SCOPE, clock: Callable[[], float] = time.time
    ) -> None:
        self.credentials = credentials
        self.scope = scope
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        # Failed refreshes so far and the last one's message: callers that queued behind a failing
        # refresh fail with it instead of each hitting the token endpoint again.
        self._failures = 0
        self._failure = ""

    async def token(self, transport: Any) -> str:
        """A valid access token, fetched through `transport` when the cached one is due for refresh."""
        token = self._token
        if token is not None and self._clock() < self._refresh_at:
            return token
        failures = self._failures
        async with self._lock:
            now = self._clock()
            if self._token is not None and now < self._refresh_at:
                return self._token  # another caller refreshed it while this one waited
            if self._failures != failures:
                return self._stale_or_raise(now, self._failure)  # the refresh it waited for failed
            try:
                token, expires_in = await self._fetch(transport, now)
            except UpstreamError as exc:
                self._failures += 1
                self._failure = exc.message
                return self._stale_or_raise(now, exc.message)
            self._token = token
            self._expires_at = now + expires_in
            # Five minutes early, or halfway for (unusually) short-lived tokens.
            self._refresh_at = now + max(expires_in - _REFRESH_MARGIN_S, expires_in / 2)
            return token

    def _stale_or_raise(self, now: float, message: str) -> str:
        if self._token is not None and now < self._expires_at:
            log.warning("Google token refresh failed; using the current token until it expires: %s", message)
            # Try again a little later, not on every request while the token endpoint is down.
            self._refresh_at = min(self._expires_at, now + _RETRY_AFTER_FAILURE_S)
            return self._token
        raise UpstreamError(message, code=_AUTH_ERROR)

    def token_request(self, now: float) -> UpstreamRequest:
        """The token endpoint request for these credentials (a fresh JWT for a service account)."""
        credentials = self.credentials
        if isinstance(credentials, ServiceAccount):
            form = {"grant_type": _JWT_BEARER, "assertion": make_assertion(credentials, now, self.scope)}
        else:
            form = {
                "grant_type": "refresh_token",
                "client_id": credentials.client_id,
                "client_secret": credentials.client_secret,
                "refresh_token": credentials.refresh_token,
            }
        headers = {"content-type": "application/x-www-form-urlencoded", "accept": "application/json"}
        return UpstreamRequest("POST", credentials.token_uri, headers, urlencode(form).encode())

    async def _fetch(self, transport: Any, now: float) -> tuple[str, float]:
        uri = self.credentials.token_uri
        prefix = f"cannot get a Google access token for the {_who(self.credentials)} from {uri}"
        try:
            stream = await transport.open(
                self.token_request(now),
                timeout_s=_TOKEN_TIMEOUT_S,
                connect_timeout_s=_CONNECT_TIMEOUT_S,
                stream=False,
            )
            body = await stream.read()
        except GatewayError as exc:
            raise UpstreamError(f"{prefix}: {exc.message}", code=_AUTH_ERROR) from exc
        if stream.status >= 400:
            detail = _endpoint_error(body)
            raise UpstreamError(
                f"{prefix}: HTTP {stream.status}" + (f": {detail}" if detail else ""), code=_AUTH_ERROR
            )
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        token = parsed.get("access_token") if isinstance(parsed, dict) else None
        if not isinstance(token, str) or not token:
            raise UpstreamError(f"{prefix}: the reply has no access_token", code=_AUTH_ERROR)
        expires_in = parsed.get("expires_in") if isinstance(parsed, dict) else None
        if isinstance(expires_in, str) and expires_in.isdigit():
            expires_in = int(expires_in)
        if not isinstance(expires_in, int | float) or isinstance(expires_in, bool) or expires_in <= 0:
            expires_in = _DEFAULT_EXPIRES_S
        return token, float(expires_in)
