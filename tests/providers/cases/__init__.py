"""One conformance case per provider adapter, discovered by `tests/providers/test_conformance.py`.

Each module here named `case_<provider>.py` defines `CASE`, a `ProviderCase`: how to start the
provider's wire-exact fake, the `models[]` entry that points the gateway at it, and the provider's
own words for the things the suite checks (its "max tokens" stop reason, how it carries an image).
Adding a provider to the suite is adding one module.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.fakes import Error
from tests.fakes.server import FakeProviderServer, RecordedRequest


@dataclass(frozen=True)
class ProviderCase:
    #: Test id and gateway model name (`conf-<id>`).
    id: str
    #: Builds the fake (not started); the suite starts it once per session.
    make_fake: Callable[[], FakeProviderServer]
    #: The YAML of one `models[]` entry (without `name:`), given the started fake.
    model_yaml: Callable[[FakeProviderServer], str]
    #: The provider's stop reason meaning "ran out of max tokens" (as a fake `Reply(finish_reason=...)`).
    length_reason: str
    #: Whether the provider returns several tool calls in one turn.
    parallel_tools: bool = True
    #: Given the recorded upstream request of a call that sent one data-URL PNG, True if the provider
    #: received it as an image in its own format. None = the provider takes no images.
    received_image: Callable[[RecordedRequest], bool] | None = None
    #: Given the recorded request of a call with one tool and a prior tool result, True if both arrived.
    received_tool_result: Callable[[RecordedRequest], bool] | None = None
    #: HTTP statuses whose provider error the suite scripts (each must reach the SDK as its class).
    error_statuses: tuple[int, ...] = (400, 401, 403, 404, 429, 500, 503)
    #: Extra keyword arguments for `Error(...)` per status, when the provider needs headers to signal it.
    error_kwargs: Callable[[int], dict[str, Any]] = field(default=lambda status: {})

    def error_or_skip(self, status: int, *, retry_after: str | None = None) -> Error:
        """The fake's `Error` for `status`, with `retry-after` when given; skips the test if the provider
        never answers `status`."""
        if status not in self.error_statuses:
            pytest.skip(f"{self.id} does not answer {status}")
        kwargs = self.error_kwargs(status)
        if retry_after is not None:
            kwargs = {**kwargs, "headers": {**kwargs.get("headers", {}), "retry-after": retry_after}}
        return Error(status, **kwargs)


def all_cases() -> list[ProviderCase]:
    cases: list[ProviderCase] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("case_"):
            module = importlib.import_module(f"{__name__}.{info.name}")
            cases.append(module.CASE)
    return cases


def gateway_model(case: ProviderCase) -> str:
    """The gateway model name serving `case` in the shared conformance gateway."""
    return f"conf-{case.id}"
