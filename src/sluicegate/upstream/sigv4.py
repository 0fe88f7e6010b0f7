"""AWS Signature Version 4 (reference §5.6): the pure functions that sign one HTTP request.

Each step of the algorithm is its own function so the official test vectors can check it in
isolation: `canonical_request` -> `string_to_sign` -> `signing_key` -> `signature` ->
`authorization_header`. `Signer` ties them together for one set of credentials, region and
service and caches the derived signing key per day (it only changes when the date does), so a
signature costs two SHA-256 digests and one HMAC.

The canonical URI is the path *as sent* quoted once more (`%3A` on the wire is `%253A` here),
as botocore does for every service but S3; the caller must therefore sign the exact path its
HTTP client will put on the wire. No I/O and no clock reads happen here except in
`Signer.sign`, which takes the time from `now` when the caller does not pass one.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

# Headers botocore never signs: proxies and clients add or rewrite them after signing.
# accept-encoding is left out for the same reason (an HTTP client may set its own).
UNSIGNED_HEADERS = frozenset(
    {"authorization", "user-agent", "expect", "connection", "transfer-encoding", "x-amzn-trace-id",
     "accept-encoding", "content-length"}
)  # fmt: skip

_SPACES = re.compile(r"\s+")
_UNRESERVED = "-_.~"  # with A-Za-z0-9 (always kept by `quote`): RFC 3986 unreserved characters


def amz_date(now: datetime) -> str:
    """`X-Amz-Date` for a moment: `YYYYMMDD'T'HHMMSS'Z'` in UTC."""
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def payload_hash(body: bytes) -> str:
    """Hex SHA-256 of the body (the last line of the canonical request)."""
    return hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256


def encode_label(value: str) -> str:
    """One URI label (a Bedrock model id or ARN) percent-encoded with only unreserved characters kept."""
    return quote(value, safe=_UNRESERVED)


def canonical_uri(path: str) -> str:
    """The path as sent, percent-encoded once more keeping `/` and `~` (botocore's non-S3 rule)."""
    return quote(path or "/", safe="/~")


def canonical_query(query: str) -> str:
    """`key=value` pairs URI-encoded (unreserved kept), sorted by key then value, joined by `&`."""
    if not query:
        return ""
    pairs = []
    for item in query.split("&"):
        if not item:
            continue
        key, _, value = item.partition("=")
        pairs.append((quote(unquote(key), safe=_UNRESERVED), quote(unquote(value), safe=_UNRESERVED)))
    pairs.sort()
    return "&".join(f"{key}={value}" for key, value in pairs)


def canonical_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> tuple[str, str]:
    """(canonical header block, signed header list) for the headers to sign.

    Names are lower-cased and sorted; values trimmed with inner runs of whitespace collapsed;
    a header given more than once has its values joined by `,`. The block ends with a newline.
    """
    items = headers.items() if isinstance(headers, Mapping) else headers
    merged: dict[str, list[str]] = {}
    for name, value in items:
        merged.setdefault(name.lower(), []).append(_SPACES.sub(" ", value.strip()))
    names = sorted(merged)
    block = "".join(f"{name}:{','.join(merged[name])}\n" for name in names)
    return block, ";".join(names)


def canonical_request(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    body_sha256: str,
) -> str:
    """Method, canonical URI, canonical query, header block, signed headers, payload hash."""
    block, signed = canonical_headers(headers)
    return "\n".join(
        (method.upper(), canonical_uri(path), canonical_query(query), block, signed, body_sha256)
    )


def credential_scope(date: str, region: str, service: str) -> str:
    return f"{date}/{region}/{service}/aws4_request"


def string_to_sign(timestamp: str, scope: str, canonical: str) -> str:
    """Algorithm, `X-Amz-Date`, credential scope, hex SHA-256 of the canonical request."""
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")."""
    k_date = _hmac(("AWS4" + secret_key).encode(), date)
    return _hmac(_hmac(_hmac(k_date, region), service), "aws4_request")


def signature(key: bytes, to_sign: str) -> str:
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def authorization_header(access_key: str, scope: str, signed_headers: str, sig: str) -> str:
    return f"{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={signed_headers}, Signature={sig}"


def host_header(url: str) -> str:
    """The `Host` value an HTTP client sends for `url`: the port only when it is not the scheme's default."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    port = parts.port
    if port is None or (parts.scheme, port) in (("https", 443), ("http", 80)):
        return host
    return f"{host}:{port}"


class Signer:
    """SigV4 for one set of credentials, region and service; the signing key is cached per day."""

    __slots__ = (
        "_key",
        "_key_date",
        "_targets",
        "access_key",
        "content_sha256_header",
        "region",
        "secret_key",
        "service",
        "session_token",
    )

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        region: str,
        service: str,
        session_token: str | None = None,
        *,
        content_sha256_header: bool = False,
    ) -> None:
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.service = service
        self.session_token = session_token
        # S3-style signers send (and sign) the payload hash as a header; Bedrock does not need it.
        self.content_sha256_header = content_sha256_header
        self._key = b""
        self._key_date = ""
        # url -> (path, query): a deployment signs the same two or three URLs over and over.
        self._targets: dict[str, tuple[str, str]] = {}

    def key_for(self, date: str) -> bytes:
        if date != self._key_date:
            self._key = signing_key(self.secret_key, date, self.region, self.service)
            self._key_date = date
        return self._key

    def _target(self, url: str) -> tuple[str, str]:
        found = self._targets.get(url)
        if found is None:
            parts = urlsplit(url)
            found = (parts.path or "/", parts.query)
            if len(self._targets) < 64:
                self._targets[url] = found
        return found

    def sign(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes, now: datetime | None = None
    ) -> dict[str, str]:
        """A new header dict: `headers` plus `x-amz-date`, the session token and `authorization`.

        Every header in `headers` is signed except those in UNSIGNED_HEADERS; `host` must be
        among them (the caller sets it to what its client will send, see `host_header`).
        """
        timestamp = amz_date(now or datetime.now(UTC))
        date = timestamp[:8]
        body_sha256 = payload_hash(body)
        out = {name: value for name, value in headers.items() if name.lower() != "authorization"}
        out["x-amz-date"] = timestamp
        if self.session_token:
            out["x-amz-security-token"] = self.session_token
        if self.content_sha256_header:
            out["x-amz-content-sha256"] = body_sha256
        to_sign = [(name, value) for name, value in out.items() if name.lower() not in UNSIGNED_HEADERS]
        path, query = self._target(url)
        canonical = canonical_request(method, path, query, to_sign, body_sha256)
        scope = credential_scope(date, self.region, self.service)
        sig = signature(self.key_for(date), string_to_sign(timestamp, scope, canonical))
        signed = ";".join(sorted({name.lower() for name, _ in to_sign}))
        out["authorization"] = authorization_header(self.access_key, scope, signed, sig)
        return out
