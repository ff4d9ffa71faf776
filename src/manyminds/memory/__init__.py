"""Personal memory: short notes the user saves about themselves (`manyminds memory add`), kept
per profile in the run store, found by meaning when a question is asked, and shown to the
members a user allows as quoted data (`context.py`). `store.py` reads and writes the tables
`schema.py` declares."""
