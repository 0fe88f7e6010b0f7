"""A live deployment: one `models[]` entry with its adapter and transport, built once per config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config.schema import ModelEntry
from ..providers.base import Adapter


@dataclass(slots=True)
class Deployment:
    label: str  # shown in `x-sluicegate-deployment`, e.g. "openai/gpt-4o-mini"
    entry: ModelEntry
    adapter: Adapter
    transport: Any  # upstream.client.Transport
    timeout_s: float
    connect_timeout_s: float
    in_flight: int = 0
