"""`manyminds batch FILE.jsonl`: many questions (or texts to verify) from one file.

    lines.py    the file → numbered lines, each a `BatchLine` or the error that names its line
    schema.py   the `batches` and `batch_lines` tables (migration m009_batches)
    store.py    reads and writes them: a batch resumes by skipping the lines it has done
    runner.py   `run_line` (one line, through `api.run_request` / `api.averify`, the way every
                surface runs a question) and `BatchRunner` (in-process, or on Ray through
                `distributed/batch_tasks.py`), which stores each line and writes the JSONL
"""
