"""SigV4 (upstream/sigv4.py) against every verification vector of reference §5.6, then the Signer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sluicegate.upstream import sigv4

AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
AMZ_DATE = "20150830T123600Z"
DATE = "20150830"
MOMENT = datetime(2015, 8, 30, 12, 36, 0, tzinfo=UTC)
SUITE_HEADERS = {"Host": "example.amazonaws.com", "X-Amz-Date": AMZ_DATE}
TOKEN = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"
BEDROCK_BODY = (
    b'{"messages":[{"role":"user","content":[{"text":"Hello"}]}],"inferenceConfig":{"maxTokens":64}}'
)
BEDROCK_URL = (
    "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
)
BEDROCK_CANONICAL = """POST
/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse

content-type:application/json
host:bedrock-runtime.us-east-1.amazonaws.com
x-amz-date:20150830T123600Z

content-type;host;x-amz-date
f5b802cc64a01910fd197a46e9e959f3a5795f7728fa5710fb28f1ec3019f545"""


def sign_suite_case(
    method: str, query: str, headers: dict[str, str], body: bytes, service: str = "service"
) -> tuple[str, str]:
    """(canonical-request SHA-256 as in the string to sign, signature) for one vector."""
    canonical = sigv4.canonical_request(method, "/", query, headers, sigv4.payload_hash(body))
    to_sign = sigv4.string_to_sign(AMZ_DATE, sigv4.credential_scope(DATE, "us-east-1", service), canonical)
    key = sigv4.signing_key(SECRET, DATE, "us-east-1", service)
    return to_sign.splitlines()[3], sigv4.signature(key, to_sign)


def test_signing_key_of_the_official_suite() -> None:
    """The derived signing key for (20150830, us-east-1, service) is the published one."""
    key = sigv4.signing_key(SECRET, DATE, "us-east-1", "service")
    assert key.hex() == "938127b5336810ddb6a5d6af445fcac9e371f9ed418ed386b022aed82901be75"


@pytest.mark.parametrize(
    ("method", "query", "extra", "body", "canonical_hash", "expected"),
    [
        pytest.param(
            "GET", "", {}, b"",
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            id="get-vanilla",
        ),
        pytest.param(
            "POST", "", {}, b"",
            "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            id="post-vanilla",
        ),
        pytest.param(
            "POST", "Param1=value1", {}, b"",
            "9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
            "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
            id="post-vanilla-query",
        ),
        pytest.param(
            "POST", "", {"Content-Type": "application/x-www-form-urlencoded"}, b"Param1=value1",
            "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
            "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
            id="post-x-www-form-urlencoded",
        ),
        pytest.param(
            "GET", "", {"X-Amz-Security-Token": TOKEN}, b"",
            "067b36aa60031588cea4a4cde1f21215227a047690c72247f1d70b32fbbfad2b",
            "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8",
            id="get-vanilla-with-session-token",
        ),
    ],
)  # fmt: skip
def test_official_suite_vectors(
    method: str, query: str, extra: dict[str, str], body: bytes, canonical_hash: str, expected: str
) -> None:
    """Each official AWS suite case gives the published canonical-request hash and signature."""
    assert sign_suite_case(method, query, {**SUITE_HEADERS, **extra}, body) == (canonical_hash, expected)


def test_form_body_payload_hash() -> None:
    """The payload hash of `Param1=value1` is the one the post-x-www-form-urlencoded case publishes."""
    expected = "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
    assert sigv4.payload_hash(b"Param1=value1") == expected


def test_get_vanilla_canonical_request_and_authorization_header_are_exact() -> None:
    """get-vanilla's canonical request matches byte for byte and the Authorization header is as published."""
    canonical = sigv4.canonical_request("GET", "/", "", SUITE_HEADERS, sigv4.EMPTY_SHA256)
    assert canonical == (
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    scope = sigv4.credential_scope(DATE, "us-east-1", "service")
    sig = sigv4.signature(
        sigv4.signing_key(SECRET, DATE, "us-east-1", "service"),
        sigv4.string_to_sign(AMZ_DATE, scope, canonical),
    )
    assert sigv4.authorization_header(AKID, scope, "host;x-amz-date", sig) == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )


def test_iam_documentation_example() -> None:
    """The IAM ListUsers example of the AWS documentation gives its published hash, key and signature."""
    headers = {
        "content-type": "application/x-www-form-urlencoded; charset=utf-8",
        "host": "iam.amazonaws.com",
        "x-amz-date": AMZ_DATE,
    }
    assert sigv4.signing_key(SECRET, DATE, "us-east-1", "iam").hex() == (
        "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
    )
    assert sign_suite_case("GET", "Action=ListUsers&Version=2010-05-08", headers, b"", service="iam") == (
        "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59",
        "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
    )


def test_bedrock_vector_canonical_request_key_and_signature() -> None:
    """The Bedrock-shaped vector: `%3A` in the path is signed as `%253A`; hash, key and signature match."""
    assert len(BEDROCK_BODY) == 94
    headers = {
        "Content-Type": "application/json",
        "Host": "bedrock-runtime.us-east-1.amazonaws.com",
        "X-Amz-Date": AMZ_DATE,
    }
    path = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    canonical = sigv4.canonical_request("POST", path, "", headers, sigv4.payload_hash(BEDROCK_BODY))
    assert canonical == BEDROCK_CANONICAL
    scope = sigv4.credential_scope(DATE, "us-east-1", "bedrock")
    to_sign = sigv4.string_to_sign(AMZ_DATE, scope, canonical)
    assert to_sign.splitlines()[3] == "40bc9f9a7e88dda141fc7a3353e52ed5bfe2051af7fd6f5cd67871fbac85bc44"
    key = sigv4.signing_key(SECRET, DATE, "us-east-1", "bedrock")
    assert key.hex() == "90e694a0eeb93605dc6a1e798b98fe0e790776a911d2494317b06246c599ba53"
    assert sigv4.signature(key, to_sign) == "6ebc9aa86bf75412bd27d5ca9a14a5f010e84574e6ec85bfdc8dc31f864a62ad"


def test_signer_reproduces_the_bedrock_vector_end_to_end() -> None:
    """Signer.sign adds x-amz-date and the Authorization header of the Bedrock vector, nothing else."""
    signer = sigv4.Signer(AKID, SECRET, "us-east-1", "bedrock")
    headers = {"content-type": "application/json", "host": sigv4.host_header(BEDROCK_URL)}
    out = signer.sign("POST", BEDROCK_URL, headers, BEDROCK_BODY, now=MOMENT)
    assert out == {
        "content-type": "application/json",
        "host": "bedrock-runtime.us-east-1.amazonaws.com",
        "x-amz-date": AMZ_DATE,
        "authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date, "
        "Signature=6ebc9aa86bf75412bd27d5ca9a14a5f010e84574e6ec85bfdc8dc31f864a62ad",
    }
    assert headers == {"content-type": "application/json", "host": "bedrock-runtime.us-east-1.amazonaws.com"}


def test_signer_signs_the_session_token_like_the_suite() -> None:
    """With a session token the Signer sends and signs x-amz-security-token (suite case with token)."""
    signer = sigv4.Signer(AKID, SECRET, "us-east-1", "service", TOKEN)
    out = signer.sign("GET", "https://example.amazonaws.com/", {"host": "example.amazonaws.com"}, b"", MOMENT)
    assert out["x-amz-security-token"] == TOKEN
    assert out["authorization"].endswith(
        "SignedHeaders=host;x-amz-date;x-amz-security-token, "
        "Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
    )


def test_signer_leaves_client_managed_headers_unsigned_and_replaces_old_authorization() -> None:
    """user-agent, accept-encoding and content-length are not signed; a stale Authorization is replaced."""
    signer = sigv4.Signer(AKID, SECRET, "us-east-1", "service")
    headers = {
        "host": "example.amazonaws.com",
        "user-agent": "x/1",
        "accept-encoding": "identity",
        "content-length": "0",
        "Authorization": "Bearer stale",
    }
    out = signer.sign("GET", "https://example.amazonaws.com/", headers, b"", MOMENT)
    assert "Authorization" not in out
    assert "SignedHeaders=host;x-amz-date, Signature=5fa00fa3" in out["authorization"]


def test_signer_optionally_sends_and_signs_the_payload_hash() -> None:
    """With content_sha256_header the payload hash is sent as x-amz-content-sha256 and signed."""
    signer = sigv4.Signer(AKID, SECRET, "us-east-1", "service", content_sha256_header=True)
    out = signer.sign(
        "POST", "https://example.amazonaws.com/", {"host": "example.amazonaws.com"}, b"x", MOMENT
    )
    assert out["x-amz-content-sha256"] == sigv4.payload_hash(b"x")
    assert "SignedHeaders=host;x-amz-content-sha256;x-amz-date," in out["authorization"]


def test_each_signature_uses_the_time_of_signing() -> None:
    """Two signatures a second apart carry different x-amz-date values and signatures (fresh per attempt)."""
    signer = sigv4.Signer(AKID, SECRET, "us-east-1", "bedrock")
    headers = {"host": "example.amazonaws.com"}
    first = signer.sign("POST", "https://example.amazonaws.com/", headers, b"{}", MOMENT)
    later = signer.sign(
        "POST", "https://example.amazonaws.com/", headers, b"{}", MOMENT + timedelta(seconds=1)
    )
    assert (first["x-amz-date"], later["x-amz-date"]) == (AMZ_DATE, "20150830T123601Z")
    assert first["authorization"] != later["authorization"]
    now = signer.sign("POST", "https://example.amazonaws.com/", headers, b"{}")
    stamp = datetime.strptime(now["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 5


def test_signing_key_is_rederived_when_the_date_changes() -> None:
    """A signature made the next day uses that day's key and scope, not the cached one."""
    signer = sigv4.Signer(AKID, SECRET, "us-east-1", "bedrock")
    signer.sign("GET", "https://h/", {"host": "h"}, b"", MOMENT)
    out = signer.sign("GET", "https://h/", {"host": "h"}, b"", MOMENT + timedelta(days=1))
    assert "Credential=AKIDEXAMPLE/20150831/us-east-1/bedrock/aws4_request" in out["authorization"]
    assert signer.key_for("20150831") == sigv4.signing_key(SECRET, "20150831", "us-east-1", "bedrock")


@pytest.mark.parametrize(
    ("model_id", "label"),
    [
        ("anthropic.claude-3-haiku-20240307-v1:0", "anthropic.claude-3-haiku-20240307-v1%3A0"),
        ("us.anthropic.claude-3-5-sonnet-20241022-v2:0", "us.anthropic.claude-3-5-sonnet-20241022-v2%3A0"),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-2-1b-instruct-v1:0",
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.meta.llama3-2-1b-instruct-v1%3A0",
        ),
        ("a b+c~d", "a%20b%2Bc~d"),
    ],
)
def test_model_ids_are_one_label_with_only_unreserved_characters_kept(model_id: str, label: str) -> None:
    """A model id or ARN is percent-encoded as one URI label: `:` -> %3A, `/` -> %2F, unreserved kept."""
    assert sigv4.encode_label(model_id) == label


def test_canonical_uri_encodes_the_sent_path_once_more_keeping_slashes() -> None:
    """The canonical URI re-encodes `%` and reserved characters but keeps `/` and `~`; empty is `/`."""
    assert sigv4.canonical_uri("/model/a%3A0/x~y") == "/model/a%253A0/x~y"
    assert sigv4.canonical_uri("/model/a:0/converse") == "/model/a%3A0/converse"
    assert sigv4.canonical_uri("") == "/"


def test_canonical_query_sorts_and_encodes_pairs() -> None:
    """Query pairs are sorted by key then value and encoded with only unreserved characters kept."""
    assert sigv4.canonical_query("b=2&a=x y&a=1&c") == "a=1&a=x%20y&b=2&c="
    assert sigv4.canonical_query("") == ""


def test_canonical_headers_trim_collapse_and_join_repeats() -> None:
    """Header values are trimmed, inner whitespace collapsed, and repeated headers joined with commas."""
    block, signed = sigv4.canonical_headers([("X-B", "  a   b "), ("Host", "h"), ("x-b", "c")])
    assert block == "host:h\nx-b:a b,c\n"
    assert signed == "host;x-b"


@pytest.mark.parametrize(
    ("url", "host"),
    [
        (
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/x/converse",
            "bedrock-runtime.us-east-1.amazonaws.com",
        ),
        ("https://proxy.example.com:443/x", "proxy.example.com"),
        ("http://127.0.0.1:8123/model/x/converse", "127.0.0.1:8123"),
        ("http://[::1]:9000/", "[::1]:9000"),
    ],
)
def test_host_header_is_what_an_http_client_sends(url: str, host: str) -> None:
    """The Host value keeps a non-default port and brackets IPv6, as HTTP clients send it."""
    assert sigv4.host_header(url) == host
