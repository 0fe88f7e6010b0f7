"""The admin API (`/admin/...`, SPEC §4): keys, teams, users, spend, logs, audit, OpenAPI document.

routes.py routes and decodes, service.py does the work (shared with the CLI's `--direct` mode),
schemas.py declares the bodies, openapi.py describes them.
"""

from .routes import PREFIX, admin, dispatch, owns_admin_path

__all__ = ["PREFIX", "admin", "dispatch", "owns_admin_path"]
