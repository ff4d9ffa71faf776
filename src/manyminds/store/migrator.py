"""Schema migrations: a registry each feature adds to, and the runner that applies them.

Each feature owns its tables and declares them in a schema module of its own, one function per
migration, registered under the name recorded in `_migrations`:

    from manyminds.store.migrator import migration

    @migration("m005_jobs")
    def m005_jobs(db: sqlite_utils.Database) -> None:
        db.executescript("CREATE TABLE jobs (...)")

`migrate(db)` applies every registered migration not yet recorded, in name order (so in number
order: names are `mNNN_what`), each in its own IMMEDIATE transaction together with the row that
records it. The order does not depend on which module happened to be imported first.

A migration that has shipped is never edited and never renamed: an existing database knows it by
its name. New ones take the next free number. The migrations of one feature neither read nor
reference another feature's tables (a job exists before its run row does), so features can add
migrations without coordinating beyond the number.

`SCHEMA_MODULES` names the schema modules `migrate` imports before it looks at the registry, so
that opening a database creates every table whichever features the caller has imported. A third
party registers more with the same decorator; its module must be imported before `migrate` runs.
Schema modules are kept light (plain SQL, no imports beyond the store): importing one is part of
opening every database, including `manyminds runs list`.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite_utils

from .db import now_iso, write_transaction

MIGRATIONS_TABLE = "_migrations"

# The schema modules of the features this package ships, in no particular order (the registry
# orders by name). Written as names and imported by `registered_migrations`, so that the store
# does not import eval, evidence or jobs at module level, and they can import the decorator.
SCHEMA_MODULES = (
    "manyminds.store.runs_schema",  # m001_initial, m002_run_search: runs, member answers, stages
    "manyminds.eval.schema",  # m003_eval: eval runs, items and their completion cache
    "manyminds.evidence.schema",  # m004_documents: local document collections and chunks
    "manyminds.jobs.schema",  # m005_jobs: the background job queue and its workers
    "manyminds.memory.schema",  # m008_memory: personal memories, their vectors and full-text index
    "manyminds.batch.schema",  # m009_batches: batch files and which of their lines are done
)

Migration = Callable[["sqlite_utils.Database"], None]

# Name order must be number order, so the number has a fixed width.
_NAME = re.compile(r"m\d{3}_[a-z0-9_]+")


class MigrationRegistry:
    """Migrations by name; `migrations()` lists them in name order. One instance, `REGISTRY`,
    serves the package; tests make their own."""

    def __init__(self, modules: Sequence[str] = ()) -> None:
        self.modules = tuple(modules)
        self._by_name: dict[str, Migration] = {}

    def migration(self, name: str) -> Callable[[Migration], Migration]:
        """Decorator: register the function as the migration recorded as `name`.

        `name` is what `_migrations` records, so it must never change once shipped. It is an
        error to register a name twice, or a name not of the form `mNNN_what`.
        """
        if not _NAME.fullmatch(name):
            raise ValueError(f"migration name {name!r} must look like 'm006_what' (m, three digits, _, lower case)")

        def register(func: Migration) -> Migration:
            existing = self._by_name.get(name)
            if existing is not None and existing is not func:
                raise ValueError(
                    f"migration {name!r} is already registered by {_describe(existing)}; "
                    f"{_describe(func)} needs a name of its own (the next free number)"
                )
            func.migration_name = name  # type: ignore[attr-defined]
            self._by_name[name] = func
            return func

        return register

    def migrations(self) -> tuple[Migration, ...]:
        """Every registered migration in name order, after importing `modules`."""
        for module in self.modules:
            importlib.import_module(module)
        return tuple(self._by_name[name] for name in sorted(self._by_name))


REGISTRY = MigrationRegistry(SCHEMA_MODULES)
migration = REGISTRY.migration
registered_migrations = REGISTRY.migrations


def migration_name(func: Migration) -> str:
    """The name recorded in `_migrations`: the registered one, else the function's name."""
    return getattr(func, "migration_name", func.__name__)


def _describe(func: Migration) -> str:
    return f"{func.__module__}.{func.__qualname__}"


def applied_migrations(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    if not db[MIGRATIONS_TABLE].exists():
        return []
    return list(db.query(f"SELECT name, applied_at FROM {MIGRATIONS_TABLE} ORDER BY rowid"))


def migrate(db: sqlite_utils.Database, migrations: Sequence[Migration] | None = None) -> list[str]:
    """Apply, in order, each migration not yet recorded in `_migrations`; return their names.

    `migrations` defaults to `registered_migrations()`; an explicit sequence is applied in the
    order given (tests pass the registered ones plus one more).

    Each migration runs in its own IMMEDIATE transaction together with the row that records it,
    so a failing migration leaves neither its changes nor its record, and two processes opening
    a new database at once cannot both apply it (the second waits, then sees it recorded).
    """
    if migrations is None:
        migrations = registered_migrations()
    names = [migration_name(m) for m in migrations]
    if len(set(names)) != len(names):
        raise ValueError(f"migration names must be unique: {names}")
    done = {row["name"] for row in applied_migrations(db)}
    applied: list[str] = []
    for name, func in zip(names, migrations):
        if name in done:
            continue
        with write_transaction(db):
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} "
                "(name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            # Another process may have applied it since we looked.
            if db.execute(f"SELECT 1 FROM {MIGRATIONS_TABLE} WHERE name = ?", [name]).fetchone():
                continue
            func(db)
            db.execute(f"INSERT INTO {MIGRATIONS_TABLE} (name, applied_at) VALUES (?, ?)", [name, now_iso()])
        applied.append(name)
    return applied
