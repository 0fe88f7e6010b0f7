"""Sluicegate: a fast LLM gateway with one OpenAI-compatible endpoint in front of every provider."""

__version__ = "0.1.0"
