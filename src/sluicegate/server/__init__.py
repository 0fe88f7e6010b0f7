"""The ASGI application, its transport helpers and process start-up."""
