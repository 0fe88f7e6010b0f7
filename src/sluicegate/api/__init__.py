"""Thin handlers per public surface beyond Chat Completions (SPEC §4): one package per API."""
