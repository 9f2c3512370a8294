"""The broker's persistent state: SQLAlchemy tables, migrations and transactions."""

from workbench.kbs.store.engine import Store, open_store, sqlite_path

__all__ = ["Store", "open_store", "sqlite_path"]
