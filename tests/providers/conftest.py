"""Fixtures of the provider suites: every case's fake started once, and one gateway process serving a
`conf-<case>` model per case (tests/providers/cases/), shared by every suite in this folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.conftest import MASTER_KEY, GatewayProcess, run_gateway
from tests.fakes.server import FakeProviderServer

from .cases import ProviderCase, all_cases, gateway_model

CASES = all_cases()


@pytest.fixture(scope="session")
def fakes() -> Iterator[dict[str, FakeProviderServer]]:
    started: dict[str, FakeProviderServer] = {}
    try:
        for case in CASES:
            started[case.id] = case.make_fake().start()
        yield started
    finally:
        for fake in started.values():
            fake.stop()


@pytest.fixture(scope="session")
def conformance_gateway(
    fakes: dict[str, FakeProviderServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    entries = "\n".join(
        f"  - name: {gateway_model(case)}\n    {case.model_yaml(fakes[case.id])}" for case in CASES
    )
    # One attempt per call: these suites check translation (retries: tests/e2e/test_resilience.py).
    config = f"master_key: {MASTER_KEY}\nrouter:\n  ttft_timeout_s: 5\n  retries: 0\nmodels:\n{entries}\n"
    tmp: Path = tmp_path_factory.mktemp("conformance")
    with run_gateway(tmp, config) as gw:
        yield gw


@pytest.fixture(scope="session")
def client(conformance_gateway: GatewayProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=conformance_gateway.v1, api_key=MASTER_KEY, max_retries=0, timeout=15) as c:
        yield c


@pytest.fixture(params=CASES, ids=[c.id for c in CASES])
def case(request: pytest.FixtureRequest, fakes: dict[str, FakeProviderServer]) -> ProviderCase:
    chosen: ProviderCase = request.param
    fakes[chosen.id].reset()
    return chosen
