"""The Anthropic Messages API surface: `/v1/messages` and `/v1/messages/count_tokens` over any model."""
