"""OpenAI-dialect surfaces beyond Chat Completions: the Responses API (responses.py)."""
