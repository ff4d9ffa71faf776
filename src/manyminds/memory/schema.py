"""The memory feature's tables (`memory/store.py` reads and writes them): memories, their
vectors and their full-text index.

Registered with `store.migrator.migration`; never edit a migration that has shipped, add the
next free number. Column conventions: `store/runs_schema.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..store.migrator import migration

if TYPE_CHECKING:
    import sqlite_utils


@migration("m008_memory")
def m008_memory(db: sqlite_utils.Database) -> None:
    """Memories scoped per profile, a float32 vector each (in a table of its own, so that
    forgetting is checkable table by table) and a full-text index over their text.

    Independent of the other migrations. The full-text table is skipped when this SQLite lacks
    FTS5; search then uses the vectors alone.
    """
    script = """
        CREATE TABLE memories (
            seq        INTEGER PRIMARY KEY,           -- the FTS rowid; never shown
            id         TEXT NOT NULL UNIQUE,          -- ULID: what `memory forget ID` takes
            profile    TEXT NOT NULL,
            text       TEXT NOT NULL,
            source     TEXT NOT NULL DEFAULT 'cli',   -- cli / api / mcp
            created_at TEXT NOT NULL
        );
        CREATE INDEX memories_profile ON memories (profile, seq);

        CREATE TABLE memory_vectors (
            memory_id  TEXT PRIMARY KEY REFERENCES memories (id) ON DELETE CASCADE,
            model      TEXT NOT NULL,                 -- embeddings.MODEL_ID at the time
            embedding  BLOB NOT NULL                  -- 384 little-endian float32, unit length
        );
        """
    options = {row[0] for row in db.execute("PRAGMA compile_options").fetchall()}
    if "ENABLE_FTS5" in options:
        script += """
        CREATE VIRTUAL TABLE memories_fts USING fts5 (
            text, content='memories', content_rowid='seq',
            tokenize='porter unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER memories_fts_ai AFTER INSERT ON memories BEGIN
            INSERT INTO memories_fts (rowid, text) VALUES (new.seq, new.text);
        END;
        CREATE TRIGGER memories_fts_ad AFTER DELETE ON memories BEGIN
            INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.seq, old.text);
        END;
        """
    db.executescript(script)
