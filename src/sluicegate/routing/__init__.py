"""Routing: deployment groups and the choice of a deployment for each call."""
