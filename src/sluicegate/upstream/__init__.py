"""Network I/O with providers: the pooled HTTP client, stream framing parsers."""
