"""The migration registry: features register their own migrations with `@migration(name)`;
`migrate` applies them in name order, whichever module was imported first, and a database made
before the registry existed (when store/migrations.py held every feature's schema) keeps working."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import sqlite_utils

from manyminds.store import RunRecorder, applied_migrations, migrate, open_db, registered_migrations
from manyminds.store.connect import configure
from manyminds.store.migrator import SCHEMA_MODULES, MigrationRegistry, migration_name

# What `_migrations` records, in the order every existing database applied them. Never changes.
SHIPPED = ["m001_initial", "m002_run_search", "m003_eval", "m004_documents", "m005_jobs", "m006_member_signals",
           "m007_run_budget", "m008_memory", "m009_batches"]


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_registry_orders_by_name_not_by_registration():
    registry = MigrationRegistry()

    @registry.migration("m003_c")
    def third(db):
        pass

    @registry.migration("m001_a")
    def first(db):
        pass

    @registry.migration("m002_b")
    def second(db):
        pass

    assert registry.migrations() == (first, second, third)
    assert [migration_name(m) for m in registry.migrations()] == ["m001_a", "m002_b", "m003_c"]


@pytest.mark.parametrize("order", [SCHEMA_MODULES, tuple(reversed(SCHEMA_MODULES))])
def test_the_shipped_migrations_come_in_number_order_whatever_the_import_order(order):
    out = run_python(
        f"""
        import importlib, json
        for name in {list(order)!r}:
            importlib.import_module(name)
        from manyminds.store import registered_migrations
        print(json.dumps([m.__name__ for m in registered_migrations()]))
        """
    )
    assert json.loads(out) == SHIPPED


def test_registered_migrations_imports_every_feature_schema_module():
    out = run_python(
        """
        import json
        from manyminds.store import registered_migrations
        print(json.dumps([m.migration_name for m in registered_migrations()]))
        """
    )
    assert json.loads(out) == SHIPPED


def test_a_feature_schema_module_is_light_to_import():
    out = run_python(
        """
        import json, sys
        import manyminds.eval.schema, manyminds.evidence.schema, manyminds.jobs.schema, manyminds.batch.schema
        import manyminds.store.runs_schema
        heavy = ["sqlite_utils", "pydantic", "numpy", "httpx", "manyminds.store.recorder",
                 "manyminds.eval.datasets", "manyminds.evidence.index", "manyminds.server"]
        print(json.dumps([m for m in heavy if m in sys.modules]))
        """
    )
    assert json.loads(out) == []


def test_registering_a_name_twice_is_an_error_that_names_both_functions():
    registry = MigrationRegistry()

    @registry.migration("m006_tags")
    def m006_tags(db):
        pass

    registry.migration("m006_tags")(m006_tags)  # the same function again (a re-import) is fine

    def other_tags(db):
        pass

    with pytest.raises(ValueError, match="'m006_tags' is already registered") as caught:
        registry.migration("m006_tags")(other_tags)
    message = str(caught.value)
    assert f"{__name__}.test_registering_a_name_twice_is_an_error_that_names_both_functions.<locals>.m006_tags" in message
    assert "other_tags needs a name of its own" in message
    assert registry.migrations() == (m006_tags,)


def test_a_shipped_name_cannot_be_registered_again():
    from manyminds.store import migration

    registered_migrations()  # loads the feature modules
    with pytest.raises(ValueError, match="'m005_jobs' is already registered by manyminds.jobs.schema.m005_jobs"):

        @migration("m005_jobs")
        def my_jobs(db):
            pass

    assert [m.__name__ for m in registered_migrations()] == SHIPPED


@pytest.mark.parametrize("name", ["m6_tags", "m0006_tags", "006_tags", "m006", "m006_Tags", "m006-tags"])
def test_a_name_must_be_m_three_digits_and_a_word(name):
    with pytest.raises(ValueError, match="must look like 'm006_what'"):
        MigrationRegistry().migration(name)


def test_a_new_database_records_the_shipped_names_in_order_and_migrating_again_does_nothing(tmp_path):
    db = open_db(tmp_path / "runs.db")
    before = applied_migrations(db)
    assert [m["name"] for m in before] == SHIPPED
    assert migrate(db) == []
    assert applied_migrations(db) == before
    tables = set(db.table_names())
    assert {"runs", "member_answers", "stages", "eval_runs", "eval_items", "eval_cache"} <= tables
    assert {"doc_collections", "doc_documents", "doc_chunks", "jobs", "workers"} <= tables
    assert {"memories", "memory_vectors"} <= tables


def test_a_database_made_by_the_previous_layout_opens_without_migrating(tmp_path):
    # Made the way store/migrations.py did: the same functions, applied in this order, recorded
    # by their names in a `_migrations` table created by the old runner.
    path = tmp_path / "old.db"
    old = sqlite_utils.Database(path)
    configure(old)
    old.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    by_name = {m.__name__: m for m in registered_migrations()}
    for name in SHIPPED:
        by_name[name](old)
        old.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", [name, "2025-01-01T00:00:00.000Z"])
    old.conn.commit()
    run_id = RunRecorder(old).start("an old question", "local")
    old.close()

    db = open_db(path)
    rows = applied_migrations(db)
    assert [r["name"] for r in rows] == SHIPPED
    assert {r["applied_at"] for r in rows} == {"2025-01-01T00:00:00.000Z"}  # nothing re-applied
    assert migrate(db) == []
    assert db.execute("SELECT question FROM runs WHERE id = ?", [run_id]).fetchone()[0] == "an old question"
    RunRecorder(db).start("a new question", "local")
    assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 2


def test_a_third_party_migration_registered_with_the_decorator_is_applied_after_the_shipped_ones(tmp_path):
    # In a child process: the global registry would otherwise keep it for the other tests.
    out = run_python(
        f"""
        import json
        from manyminds.store import applied_migrations, migration, open_db

        @migration("m900_plugin_notes")
        def notes(db):
            db.execute("CREATE TABLE plugin_notes (run_id TEXT, note TEXT)")

        db = open_db({str(tmp_path / "runs.db")!r})
        print(json.dumps([[m["name"] for m in applied_migrations(db)], db["plugin_notes"].exists()]))
        """
    )
    assert json.loads(out) == [[*SHIPPED, "m900_plugin_notes"], True]
