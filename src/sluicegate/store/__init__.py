"""Persistent state: keys, teams, users, spend ledger, request log, audit log (SQLite or Postgres).

db.py opens the database, schema.py declares the tables, migrations/ + migrate.py create them,
keys.py / accounts.py / ledger.py / logs.py / audit.py read and write them on a connection,
facade.py offers the stand-alone operations, writer.py batches ledger and log rows off the hot path.
"""

from .db import Database
from .facade import Store
from .ledger import LedgerRow, SpendGroup
from .logs import LogRow

__all__ = ["Database", "LedgerRow", "LogRow", "SpendGroup", "Store"]
