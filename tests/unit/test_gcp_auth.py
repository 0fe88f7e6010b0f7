"""Google OAuth2 tokens for Vertex AI: credentials parsing, the signed JWT, caching, refresh and errors."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from sluicegate.errors import UpstreamConnectionError, UpstreamError
from sluicegate.types import UpstreamRequest
from sluicegate.upstream.gcp_auth import (
    SCOPE,
    AuthorizedUser,
    CredentialsError,
    ServiceAccount,
    TokenSource,
    make_assertion,
    parse_credentials,
)
from tests.fakes.google_oauth import service_account_info, service_account_key

TOKEN_URI = "https://oauth2.example.test/token"


def account_json(**changes: Any) -> str:
    info = service_account_info(TOKEN_URI)
    info.update(changes)
    return json.dumps({k: v for k, v in info.items() if v is not None})


def account() -> ServiceAccount:
    credentials = parse_credentials(account_json())
    assert isinstance(credentials, ServiceAccount)
    return credentials


def b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class _Reply:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    async def read(self) -> bytes:
        return self.body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        yield self.body

    def close(self) -> None:
        pass


class ScriptedTransport:
    """Answers token requests from a script; an optional gate holds every answer until it is set."""

    def __init__(self, *replies: tuple[int, Any] | Exception) -> None:
        self.replies = list(replies)
        self.requests: list[UpstreamRequest] = []
        self.gate: asyncio.Event | None = None

    async def open(
        self, request: UpstreamRequest, *, timeout_s: float, connect_timeout_s: float, stream: bool
    ) -> _Reply:
        assert not stream and timeout_s > 0 and connect_timeout_s > 0
        self.requests.append(request)
        if self.gate is not None:
            await self.gate.wait()
        answer = self.replies.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, body = answer
        return _Reply(status, body if isinstance(body, bytes) else json.dumps(body).encode())


def granted(token: str, expires_in: Any = 3599) -> tuple[int, dict[str, Any]]:
    return 200, {"access_token": token, "expires_in": expires_in, "token_type": "Bearer"}


def form(request: UpstreamRequest) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.body.decode()).items()}


# --- credentials ------------------------------------------------------------------------------


def test_service_account_json_is_parsed_with_its_token_uri_and_project() -> None:
    """A service-account key file gives the email, an RSA key, the key id, token_uri and project."""
    credentials = account()
    assert credentials.client_email == "sluicegate-test@fake-project.iam.gserviceaccount.com"
    assert credentials.private_key_id == "0123456789abcdef0123456789abcdef01234567"
    assert (credentials.token_uri, credentials.project_id) == (TOKEN_URI, "fake-project")


def test_missing_token_uri_defaults_to_google() -> None:
    """Without token_uri the standard Google token endpoint is used."""
    credentials = parse_credentials(account_json(token_uri=None))
    assert credentials.token_uri == "https://oauth2.googleapis.com/token"


def test_authorized_user_json_is_accepted() -> None:
    """gcloud's authorized_user credentials (refresh token) are accepted, quota project as project."""
    text = json.dumps(
        {
            "type": "authorized_user",
            "client_id": "cid.apps.googleusercontent.com",
            "client_secret": "secret",
            "refresh_token": "1//refresh",
            "quota_project_id": "billing-project",
        }
    )
    credentials = parse_credentials(text)
    assert isinstance(credentials, AuthorizedUser)
    assert (credentials.refresh_token, credentials.project_id) == ("1//refresh", "billing-project")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[1]", "must be a JSON object"),
        (account_json(client_email=None), "'client_email'"),
        (account_json(private_key="-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), "PEM"),
        (account_json(type="external_account"), "'external_account' is not supported"),
        (json.dumps({"type": "authorized_user", "client_id": "x"}), "'client_secret'"),
    ],
)
def test_unusable_credentials_say_what_is_wrong_without_key_material(text: str, expected: str) -> None:
    """Each unusable credentials JSON raises CredentialsError naming the problem, never echoing the key."""
    with pytest.raises(CredentialsError) as info:
        parse_credentials(text)
    assert expected in str(info.value)
    assert "BEGIN" not in str(info.value) and "AAAA" not in str(info.value)


# --- the JWT ----------------------------------------------------------------------------------


def test_assertion_is_an_rs256_jwt_with_the_documented_claims() -> None:
    """The JWT is RS256 with the key id, iss = account, aud = token_uri, cloud-platform scope, 1 h life."""
    credentials = account()
    header_b64, claims_b64, signature_b64 = make_assertion(credentials, now=1_700_000_000.9).split(".")
    assert json.loads(b64decode(header_b64)) == {
        "alg": "RS256",
        "typ": "JWT",
        "kid": "0123456789abcdef0123456789abcdef01234567",
    }
    assert json.loads(b64decode(claims_b64)) == {
        "iss": credentials.client_email,
        "scope": SCOPE,
        "aud": TOKEN_URI,
        "iat": 1_700_000_000,
        "exp": 1_700_003_600,
    }
    assert "=" not in header_b64 + claims_b64 + signature_b64
    # Raises InvalidSignature if the signature is not the account key's over header.claims.
    service_account_key().public_key().verify(
        b64decode(signature_b64), f"{header_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256()
    )


# --- fetching and caching ---------------------------------------------------------------------


async def test_token_is_fetched_with_the_jwt_bearer_grant_then_cached() -> None:
    """The first call POSTs the JWT-bearer grant to token_uri; later calls reuse the token."""
    transport = ScriptedTransport(granted("ya29.one"))
    source = TokenSource(account(), clock=Clock())
    assert await source.token(transport) == "ya29.one"
    assert await source.token(transport) == "ya29.one"
    assert len(transport.requests) == 1
    request = transport.requests[0]
    assert (request.method, request.url) == ("POST", TOKEN_URI)
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    sent = form(request)
    assert sent["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert json.loads(b64decode(sent["assertion"].split(".")[1]))["iss"] == account().client_email


async def test_token_is_refreshed_five_minutes_before_expiry() -> None:
    """A token valid for an hour is reused for 55 minutes, then replaced before it expires."""
    clock = Clock()
    transport = ScriptedTransport(granted("ya29.one", 3600), granted("ya29.two", 3600))
    source = TokenSource(account(), clock=clock)
    assert await source.token(transport) == "ya29.one"
    clock.now += 3600 - 300 - 1
    assert await source.token(transport) == "ya29.one"
    clock.now += 2
    assert await source.token(transport) == "ya29.two"
    assert len(transport.requests) == 2


async def test_concurrent_callers_share_one_refresh() -> None:
    """Twenty callers arriving while a refresh is in flight wait for it; the endpoint sees one request."""
    transport = ScriptedTransport(granted("ya29.shared"))
    transport.gate = asyncio.Event()
    source = TokenSource(account(), clock=Clock())
    waiting = [asyncio.ensure_future(source.token(transport)) for _ in range(20)]
    await asyncio.sleep(0.01)
    assert len(transport.requests) == 1
    transport.gate.set()
    assert await asyncio.gather(*waiting) == ["ya29.shared"] * 20
    assert len(transport.requests) == 1


async def test_token_endpoint_refusal_is_a_clear_upstream_error() -> None:
    """An OAuth error names the endpoint, the account and Google's reason, and is not a key leak."""
    transport = ScriptedTransport(
        (400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
    )
    with pytest.raises(UpstreamError) as info:
        await TokenSource(account(), clock=Clock()).token(transport)
    message = info.value.message
    assert TOKEN_URI in message and account().client_email in message
    assert "HTTP 400: invalid_grant: Invalid JWT Signature." in message
    assert info.value.code == "upstream_auth_error" and info.value.http_status == 502
    assert "PRIVATE" not in message


async def test_callers_queued_behind_a_failed_refresh_fail_without_retrying() -> None:
    """Callers waiting on a refresh that fails get its error; the endpoint is not hit once per caller."""
    transport = ScriptedTransport((503, b"<html>unavailable</html>"), granted("ya29.later"))
    transport.gate = asyncio.Event()
    source = TokenSource(account(), clock=Clock())
    waiting = [asyncio.ensure_future(source.token(transport)) for _ in range(5)]
    await asyncio.sleep(0.01)
    transport.gate.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, UpstreamError) and "HTTP 503" in r.message for r in results)
    assert len(transport.requests) == 1
    assert await source.token(transport) == "ya29.later"  # a new call tries again


async def test_failed_refresh_keeps_the_unexpired_token_then_fails_after_expiry() -> None:
    """If a refresh fails while the old token is valid, it is still used; once expired, the call fails."""
    clock = Clock()
    refused = (401, {"error": "unauthorized_client", "error_description": "disabled"})
    transport = ScriptedTransport(granted("ya29.old", 3600), refused, refused)
    source = TokenSource(account(), clock=clock)
    assert await source.token(transport) == "ya29.old"
    clock.now += 3400
    assert await source.token(transport) == "ya29.old"
    assert await source.token(transport) == "ya29.old"  # no new attempt right after a failure
    assert len(transport.requests) == 2
    clock.now += 300
    with pytest.raises(UpstreamError, match="unauthorized_client: disabled"):
        await source.token(transport)


async def test_unreachable_endpoint_and_reply_without_token_are_upstream_errors() -> None:
    """A connection failure and a 200 without access_token both raise UpstreamError naming the endpoint."""
    transport = ScriptedTransport(UpstreamConnectionError("cannot connect"), (200, {"token_type": "Bearer"}))
    source = TokenSource(account(), clock=Clock())
    with pytest.raises(UpstreamError, match="cannot connect") as first:
        await source.token(transport)
    assert TOKEN_URI in first.value.message
    with pytest.raises(UpstreamError, match="no access_token"):
        await source.token(transport)


async def test_missing_expires_in_means_one_hour() -> None:
    """A reply without expires_in is treated as a one-hour token."""
    clock = Clock()
    transport = ScriptedTransport(granted("ya29.a", None), granted("ya29.b"))
    source = TokenSource(account(), clock=clock)
    assert await source.token(transport) == "ya29.a"
    clock.now += 3000
    assert await source.token(transport) == "ya29.a"
    clock.now += 400
    assert await source.token(transport) == "ya29.b"


async def test_authorized_user_uses_the_refresh_token_grant() -> None:
    """Authorized-user credentials exchange their refresh token, client id and secret."""
    text = json.dumps(
        {"type": "authorized_user", "client_id": "cid", "client_secret": "cs", "refresh_token": "rt"}
    )
    transport = ScriptedTransport(granted("ya29.user"))
    assert await TokenSource(parse_credentials(text), clock=Clock()).token(transport) == "ya29.user"
    assert form(transport.requests[0]) == {
        "grant_type": "refresh_token",
        "client_id": "cid",
        "client_secret": "cs",
        "refresh_token": "rt",
    }
