"""A fake Google OAuth2 token endpoint and the test service account it trusts, for the Vertex AI fakes.

The service account's RSA key is generated at test time (once per process; never committed).
``GoogleOAuth.token_endpoint`` implements the JWT-bearer grant the way ``oauth2.googleapis.com``
does: it checks the grant type, the RS256 signature against the account's public key, and the
``iss``/``aud``/``scope``/``iat``/``exp`` claims, answering ``{"access_token", "expires_in",
"token_type"}`` or an OAuth error body (``{"error": "invalid_grant", "error_description": ...}``).
``authorize`` checks a Vertex request's bearer token against the tokens it issued.
``GoogleOAuthServer`` is the base the Vertex fakes share: the token endpoint at ``POST /token``
beside the API, and the service-account JSON that points at it.
"""

from __future__ import annotations

import base64
import functools
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .server import ApiError, FakeProviderServer

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
    "other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)


@functools.cache
def service_account_key() -> rsa.RSAPrivateKey:
    """One 2048-bit RSA key per test process (generating one costs ~50 ms)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_key_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def service_account_info(token_uri: str, *, project_id: str | None = "fake-project") -> dict[str, Any]:
    """A service-account key file, shaped like the ones the Cloud console downloads."""
    email = f"sluicegate-test@{project_id or 'fake-project'}.iam.gserviceaccount.com"
    info: dict[str, Any] = {
        "type": "service_account",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": private_key_pem(service_account_key()),
        "client_email": email,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "universe_domain": "googleapis.com",
    }
    if project_id is not None:
        info["project_id"] = project_id
    return info


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _oauth_error(error: str, description: str, status: int = 400) -> ApiError:
    return ApiError(status, {"error": error, "error_description": description})


def google_error(status: int, message: str, status_name: str, details: list[Any] | None = None) -> ApiError:
    """An ApiError with Google's `{"error": {"code", "message", "status"}}` envelope (reference §4.6)."""
    error: dict[str, Any] = {"code": status, "message": message, "status": status_name}
    if details:
        error["details"] = details
    return ApiError(status, {"error": error})


@dataclass
class IssuedToken:
    token: str
    expires_at: float


class GoogleOAuth:
    """Issues and checks access tokens for one test service account; see the module docstring."""

    def __init__(self, *, project_id: str = "fake-project", expires_in: int = 3599) -> None:
        self.project_id = project_id
        self.expires_in = expires_in
        self.public_key = service_account_key().public_key()
        self.issued: list[IssuedToken] = []
        #: JWT claims of every accepted assertion, in order (tests check what the gateway signed).
        self.assertions: list[dict[str, Any]] = []
        #: Scripted token endpoint failures: (status, body) answered before any normal grant.
        self.failures: list[tuple[int, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._token_uri: str | None = None

    def credentials(self, token_uri: str) -> dict[str, Any]:
        self._token_uri = token_uri
        return service_account_info(token_uri, project_id=self.project_id)

    def credentials_json(self, token_uri: str) -> str:
        return json.dumps(self.credentials(token_uri))

    def reset(self) -> None:
        """Forget scripted failures and recorded assertions; issued tokens stay valid until they expire,
        as a real token endpoint's would (a gateway holding one must not see it revoked)."""
        with self._lock:
            self.assertions.clear()
            self.failures.clear()

    def revoke_all(self) -> None:
        """Invalidate every issued token (the next API call with one gets 401 UNAUTHENTICATED)."""
        with self._lock:
            self.issued.clear()

    # ------------------------------------------------------------------------- token endpoint

    def token_response(self, raw: bytes, token_uri: str) -> tuple[int, dict[str, Any]]:
        """(status, body) of the token endpoint for one form-encoded request body."""
        with self._lock:
            if self.failures:
                return self.failures.pop(0)
        try:
            claims = self._check_grant(raw, token_uri)
        except ApiError as error:
            return error.status, error.body
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        with self._lock:
            self.assertions.append(claims)
            self.issued.append(IssuedToken(token, time.time() + self.expires_in))
        return 200, {"access_token": token, "expires_in": self.expires_in, "token_type": "Bearer"}

    def _check_grant(self, raw: bytes, token_uri: str) -> dict[str, Any]:
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != JWT_BEARER:
            raise _oauth_error("unsupported_grant_type", "Invalid grant_type: " + form.get("grant_type", ""))
        assertion = form.get("assertion", "")
        pieces = assertion.split(".")
        if len(pieces) != 3:
            raise _oauth_error("invalid_request", "Invalid JWT: bad format.")
        try:
            header = json.loads(_b64decode(pieces[0]))
            claims = json.loads(_b64decode(pieces[1]))
            signature = _b64decode(pieces[2])
        except ValueError:
            raise _oauth_error("invalid_request", "Invalid JWT: bad encoding.") from None
        if header.get("alg") != "RS256" or header.get("typ", "JWT") != "JWT":
            raise _oauth_error("invalid_grant", "Invalid JWT: unsupported algorithm.")
        try:
            self.public_key.verify(
                signature, f"{pieces[0]}.{pieces[1]}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            raise _oauth_error("invalid_grant", "Invalid JWT Signature.") from None
        expected = service_account_info(token_uri, project_id=self.project_id)
        if claims.get("iss") != expected["client_email"]:
            raise _oauth_error("invalid_grant", "Invalid email or User ID")
        if claims.get("aud") != token_uri:
            raise _oauth_error(
                "invalid_grant", f"Invalid JWT: Failed audience check. The right audience is {token_uri}"
            )
        if SCOPE not in str(claims.get("scope", "")).split():
            raise _oauth_error("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        iat, exp, now = claims.get("iat"), claims.get("exp"), time.time()
        if (
            not isinstance(iat, int)
            or not isinstance(exp, int)
            or exp - iat > 3600
            or exp <= now
            or iat > now + 300
        ):
            raise _oauth_error(
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
                "Check your iat and exp values in the JWT claim.",
            )
        return dict(claims)

    async def token_endpoint(self, request: web.Request, raw: bytes) -> web.Response:
        token_uri = str(request.url.with_query(None))
        status, body = self.token_response(raw, token_uri)
        return web.json_response(body, status=status)

    # --------------------------------------------------------------------------- API requests

    def authorize(self, request: web.Request) -> None:
        """Raise Google's 401 unless the request carries a bearer token this endpoint issued, unexpired."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise google_error(401, UNAUTHENTICATED, "UNAUTHENTICATED")
        now = time.time()
        with self._lock:
            valid = any(t.token == token.strip() and t.expires_at > now for t in self.issued)
        if not valid:
            raise google_error(401, UNAUTHENTICATED, "UNAUTHENTICATED")


class GoogleOAuthServer(FakeProviderServer):
    """A fake Google API with its own token endpoint: subclasses set ``oauth`` and route ``/token`` to
    ``_token``; ``reset()`` also forgets the endpoint's scripted failures and recorded assertions."""

    oauth: GoogleOAuth

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    @property
    def credentials_json(self) -> str:
        """A service-account JSON whose token_uri is this fake's token endpoint."""
        return self.oauth.credentials_json(self.token_uri)

    def reset(self) -> None:
        super().reset()
        self.oauth.reset()

    async def _token(self, request: web.Request) -> web.Response:
        raw, _ = await self.record(request)
        return await self.oauth.token_endpoint(request, raw)
