"""The evidence feature's tables (`evidence/index.py` reads and writes them): document
collections, documents, chunks and the chunks' full-text index.

Registered with `store.migrator.migration`; never edit a migration that has shipped, add the
next free number. Column conventions: `store/runs_schema.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..store.migrator import migration

if TYPE_CHECKING:
    import sqlite_utils


@migration("m004_documents")
def m004_documents(db: sqlite_utils.Database) -> None:
    """Local document collections for evidence (`manyminds.evidence`): collections, documents,
    chunks with their provenance and float32 embeddings, and a full-text index over the chunks.

    Independent of the other migrations. The full-text table is skipped when this SQLite lacks
    FTS5; retrieval then uses the vectors alone.
    """
    # sqlite-utils runs a script statement by statement inside `migrate`'s transaction, so the
    # tables, index and triggers are created together with the `_migrations` row, or not at all.
    script = """
        CREATE TABLE doc_collections (
            id              INTEGER PRIMARY KEY,
            name            TEXT NOT NULL UNIQUE,
            created_at      TEXT NOT NULL,
            updated_at      TEXT NOT NULL,
            -- Bumped by every change to the collection; in-memory vector matrices compare it, so
            -- a change made by another process invalidates them too.
            version         INTEGER NOT NULL DEFAULT 0,
            embedding_model TEXT NOT NULL
        );

        CREATE TABLE doc_documents (
            id            INTEGER PRIMARY KEY,
            collection_id INTEGER NOT NULL REFERENCES doc_collections (id) ON DELETE CASCADE,
            path          TEXT NOT NULL,                  -- absolute path (or URL) as added
            title         TEXT,
            kind          TEXT NOT NULL,                  -- text / markdown / html / pdf
            sha256        TEXT NOT NULL,                  -- of the file's bytes: same hash, no re-index
            size_bytes    INTEGER NOT NULL,
            chars         INTEGER NOT NULL,               -- length of the parsed text
            pages         INTEGER,
            chunk_count   INTEGER NOT NULL,
            added_at      TEXT NOT NULL,
            updated_at    TEXT NOT NULL,
            UNIQUE (collection_id, path)
        );

        CREATE TABLE doc_chunks (
            id            INTEGER PRIMARY KEY,            -- the FTS rowid and Passage.chunk_id
            document_id   INTEGER NOT NULL REFERENCES doc_documents (id) ON DELETE CASCADE,
            collection_id INTEGER NOT NULL REFERENCES doc_collections (id) ON DELETE CASCADE,
            seq           INTEGER NOT NULL,               -- order within the document
            text          TEXT NOT NULL,                  -- exactly parsed_text[start_char:end_char]
            context       TEXT NOT NULL DEFAULT '',       -- title and heading path, searched too
            location      TEXT NOT NULL,                  -- "page 3", "§ A > B (lines 4–9)", …
            page          INTEGER,
            start_char    INTEGER NOT NULL,
            end_char      INTEGER NOT NULL,
            embedding     BLOB NOT NULL                   -- 384 little-endian float32, unit length
        );
        CREATE INDEX doc_chunks_collection ON doc_chunks (collection_id, id);
        CREATE INDEX doc_chunks_document ON doc_chunks (document_id, seq);
        """
    options = {row[0] for row in db.execute("PRAGMA compile_options").fetchall()}
    if "ENABLE_FTS5" in options:
        script += """
        CREATE VIRTUAL TABLE doc_chunks_fts USING fts5 (
            text, context, content='doc_chunks', content_rowid='id',
            tokenize='porter unicode61 remove_diacritics 2'
        );
        CREATE TRIGGER doc_chunks_fts_ai AFTER INSERT ON doc_chunks BEGIN
            INSERT INTO doc_chunks_fts (rowid, text, context) VALUES (new.id, new.text, new.context);
        END;
        CREATE TRIGGER doc_chunks_fts_ad AFTER DELETE ON doc_chunks BEGIN
            INSERT INTO doc_chunks_fts (doc_chunks_fts, rowid, text, context)
                VALUES ('delete', old.id, old.text, old.context);
        END;
        CREATE TRIGGER doc_chunks_fts_au AFTER UPDATE OF text, context ON doc_chunks BEGIN
            INSERT INTO doc_chunks_fts (doc_chunks_fts, rowid, text, context)
                VALUES ('delete', old.id, old.text, old.context);
            INSERT INTO doc_chunks_fts (rowid, text, context) VALUES (new.id, new.text, new.context);
        END;
        """
    db.executescript(script)
