"""The pieces every translating adapter shares: `Adapter.refuse` and the pure helpers of `_translate.py`."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sluicegate.errors import InvalidRequestError
from sluicegate.providers._translate import (
    ChunkStream,
    parse_data_url,
    requested,
    tool_arguments,
)
from sluicegate.providers.base import DONE_FRAME
from sluicegate.providers.cohere import CohereAdapter
from sluicegate.types import ChatRequest, Usage

from ._helpers import adapter_factory

make_adapter = adapter_factory(CohereAdapter, name="c", provider="cohere", model="command-a", api_key="k")


def test_requested_skips_values_that_ask_for_nothing() -> None:
    """Absent, null, false, 0 and {} ask for nothing; n only above 1; seed whatever its value."""
    body: dict[str, Any] = {"n": 1, "logprobs": False, "top_logprobs": 0, "logit_bias": {}, "seed": 0}
    assert list(requested(body, ("n", "logprobs", "top_logprobs", "logit_bias", "user", "seed"))) == ["seed"]
    assert list(requested({"n": 2, "logprobs": True}, ("n", "logprobs"))) == ["n", "logprobs"]


def test_refuse_names_the_parameter_and_the_provider_unless_params_are_dropped() -> None:
    """refuse() is a 400 unsupported_parameter naming both; with drop_params it returns quietly."""
    request = ChatRequest(body={}, model="public-name")
    with pytest.raises(InvalidRequestError) as info:
        make_adapter().refuse(request, "logit_bias")
    assert (info.value.param, info.value.code) == ("logit_bias", "unsupported_parameter")
    assert "model 'public-name' (provider cohere)" in info.value.message
    make_adapter(drop_params=True).refuse(request, "logit_bias")


@pytest.mark.parametrize(
    "url", ["data:image/png,AAAA", "data:image/png;base64", "https://example.com/a.png", "ftp://x"]
)
def test_parse_data_url_refuses_anything_but_base64_data_urls(url: str) -> None:
    """Only data:<type>;base64,<data> is a data URL; the 400 names the field it came from."""
    with pytest.raises(InvalidRequestError) as info:
        parse_data_url(url, "messages[0].content[1].image_url.url")
    assert info.value.param == "messages[0].content[1].image_url.url"


def test_parse_data_url_splits_media_type_and_data() -> None:
    """The media type (parameters dropped) and the base64 text come back as sent."""
    assert parse_data_url("data:image/png;base64,iVBOR=", "x") == ("image/png", "iVBOR=")


def test_tool_arguments_are_a_json_object_or_a_400_naming_them() -> None:
    """Objects pass, blank means no arguments, and invalid or non-object JSON is refused by path."""
    assert tool_arguments({"a": 1}, "at") == {"a": 1}
    assert tool_arguments("  ", "at") == {} and tool_arguments(None, "at") == {}
    assert tool_arguments('{"city":"Paris"}', "at") == {"city": "Paris"}
    for bad in ("{oops", "[1, 2]", 7):
        with pytest.raises(InvalidRequestError) as info:
            tool_arguments(bad, "messages[1].tool_calls[0].function.arguments")
        assert info.value.param == "messages[1].tool_calls[0].function.arguments"


class _Stream(ChunkStream):
    def feed(self, event: Any) -> list[bytes]:
        return []


@pytest.mark.parametrize("include_usage", [False, True])
def test_chunk_stream_frames_share_one_envelope_and_close_with_usage_when_asked(include_usage: bool) -> None:
    """Every chunk carries the stream's id, created and model; closing adds usage only if the caller asked."""
    stream = _Stream("chatcmpl-1", "m", include_usage)
    stream.usage = Usage(prompt_tokens=3, completion_tokens=2)
    chunk = orjson.loads(stream.chunk({"content": "hi"}, index=1)[6:])
    assert (chunk["id"], chunk["object"], chunk["model"]) == ("chatcmpl-1", "chat.completion.chunk", "m")
    assert chunk["choices"] == [
        {"index": 1, "delta": {"content": "hi"}, "logprobs": None, "finish_reason": None}
    ]
    assert ("usage" in chunk) is include_usage
    closing = stream.closing()
    assert stream.finished and closing[-1] == DONE_FRAME
    assert len(closing) == (2 if include_usage else 1)
    if include_usage:
        assert orjson.loads(closing[0][6:])["usage"]["total_tokens"] == 5
