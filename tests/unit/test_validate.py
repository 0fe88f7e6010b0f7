"""Chat Completions bodies are checked for shape and type before any provider sees them."""

from __future__ import annotations

from typing import Any

import pytest

from sluicegate.errors import InvalidJSONError, InvalidRequestError
from sluicegate.pipeline.validate import chat_request, parse_json_object

USER = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"", "empty"),
        (b"{", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"a": "\xff"}', "not valid JSON"),
        (b"[" * 2000 + b"]" * 2000, "not valid JSON"),
    ],
)
def test_unparseable_bodies_are_invalid_json(raw: bytes, needle: str) -> None:
    """Empty, truncated, non-object, invalid UTF-8 and over-deep bodies are 400 invalid_json."""
    with pytest.raises(InvalidJSONError, match=needle):
        parse_json_object(raw)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": USER}, "model"),
        ({"model": 3, "messages": USER}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": "hi"}, "messages"),
        ({"model": "m", "messages": ["hi"]}, "messages[0]"),
        ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": "m", "messages": USER, "stream": "yes"}, "stream"),
        ({"model": "m", "messages": USER, "max_tokens": True}, "max_tokens"),
        ({"model": "m", "messages": USER, "max_tokens": "10"}, "max_tokens"),
        ({"model": "m", "messages": USER, "temperature": "hot"}, "temperature"),
        ({"model": "m", "messages": USER, "tools": {}}, "tools"),
        ({"model": "m", "messages": USER, "stop": 5}, "stop"),
    ],
)
def test_bad_fields_name_the_parameter(body: dict[str, Any], param: str) -> None:
    """Each wrong or missing field is a 400 whose `param` names it."""
    with pytest.raises(InvalidRequestError) as info:
        chat_request(body)
    assert info.value.param == param
    assert info.value.http_status == 400


def test_gateway_controls_are_stripped_and_usage_wish_recorded() -> None:
    """The `sluicegate` object never reaches a provider; include_usage is remembered for streams."""
    request = chat_request(
        {
            "model": "m",
            "messages": USER,
            "stream": True,
            "stream_options": {"include_usage": True},
            "sluicegate": {"tags": ["a"]},
        }
    )
    assert "sluicegate" not in request.body
    assert request.stream and request.include_usage


def test_integers_are_accepted_where_numbers_are_expected() -> None:
    """`temperature: 1` (an int) is a valid number."""
    assert chat_request({"model": "m", "messages": USER, "temperature": 1}).body["temperature"] == 1
