"""One gateway process for the e2e suite, wired to the fake OpenAI and Anthropic servers and to
mock models with injected faults; tests drive it with the official SDKs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.conftest import MASTER_KEY, GatewayProcess, free_port, run_gateway
from tests.fakes import FakeAnthropic, FakeOpenAI

OPENAI_KEY = "sk-fake-openai-upstream"
ANTHROPIC_KEY = "sk-ant-fake-upstream"


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=OPENAI_KEY) as fake:
        yield fake


@pytest.fixture(scope="session")
def fake_anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(api_key=ANTHROPIC_KEY) as fake:
        yield fake


@pytest.fixture(autouse=True)
def _reset_fakes(request: pytest.FixtureRequest) -> None:
    """Each test starts with empty behaviour queues and request logs."""
    for name in ("fake_openai", "fake_anthropic"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()


def gateway_config(openai_base: str, anthropic_base: str) -> str:
    dead_port = free_port()  # nothing listens there: connection refused
    return f"""
master_key: {MASTER_KEY}
router:
  ttft_timeout_s: 1.5
  retries: 0  # these suites check one attempt; retries are tests/e2e/test_resilience.py's
models:
  - name: gpt-fake
    provider: openai
    model: gpt-4o-mini
    api_base: {openai_base}
    api_key: {OPENAI_KEY}
  - name: gpt-fake-short
    provider: openai
    model: gpt-4o-mini
    api_base: {openai_base}
    api_key: {OPENAI_KEY}
    timeout_s: 1
  - name: vllm-fake
    provider: openai-compatible
    preset: vllm
    model: meta-llama/Llama-3.1-8B-Instruct
    api_base: {openai_base}
    api_key: {OPENAI_KEY}
  - name: claude-fake
    provider: anthropic
    model: claude-sonnet-4-5
    api_base: {anthropic_base}
    api_key: {ANTHROPIC_KEY}
  - name: demo
    provider: mock
  - name: demo-fail
    provider: mock
    mock: {{fail_rate: 1.0, fail_status: 503}}
  - name: demo-cut
    provider: mock
    mock: {{reply: "one two three four five six", cut_after_tokens: 2}}
  - name: demo-hang
    provider: mock
    timeout_s: 0.5
    mock: {{timeout_rate: 1.0}}
  - name: dead
    provider: openai
    api_base: http://127.0.0.1:{dead_port}/v1
    api_key: sk-x
"""


@pytest.fixture(scope="session")
def gateway(
    fake_openai: FakeOpenAI, fake_anthropic: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    tmp: Path = tmp_path_factory.mktemp("gateway")
    with run_gateway(tmp, gateway_config(fake_openai.base_url, fake_anthropic.base_url)) as gw:
        yield gw


@pytest.fixture
def client(gateway: GatewayProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.v1, api_key=MASTER_KEY, max_retries=0, timeout=10) as c:
        yield c
