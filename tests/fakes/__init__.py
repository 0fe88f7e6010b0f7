"""Fake LLM provider servers for tests: real HTTP on 127.0.0.1, each provider's exact wire format.

``FakeOpenAI`` and ``FakeAnthropic`` run in a background thread so that a gateway in another
process can call them; tests script each call with the behaviours below and inspect
``fake.requests`` afterwards::

    with FakeOpenAI() as fake:
        fake.enqueue(Error(429, headers={"retry-after": "2"}), Reply("hi"))
        ...  # point the gateway at fake.base_url
        assert fake.requests[-1].json["model"] == "gpt-4o-mini"
"""

from .behaviours import Behaviour, CutStream, Error, Reply, SlowFirstToken, ToolCalls
from .fake_anthropic import FakeAnthropic
from .fake_openai import FakeOpenAI
from .server import FakeProviderServer, RecordedRequest

__all__ = [
    "Behaviour",
    "CutStream",
    "Error",
    "FakeAnthropic",
    "FakeOpenAI",
    "FakeProviderServer",
    "RecordedRequest",
    "Reply",
    "SlowFirstToken",
    "ToolCalls",
]
