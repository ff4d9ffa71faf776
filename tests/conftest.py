"""Every test gets a throw-away user dir, so nothing touches the real ~/.manyminds.

The local-model cache is shared across tests (and runs) so the Gemma file is assembled once per
machine: `MANYMINDS_CACHE` points at ~/.cache/manyminds-test unless already set.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_CACHE = Path(os.environ.get("MANYMINDS_TEST_CACHE", Path.home() / ".cache" / "manyminds-test"))


@pytest.fixture(autouse=True)
def manyminds_home(tmp_path, monkeypatch):
    home = tmp_path / "mmhome"
    home.mkdir()
    monkeypatch.setenv("MANYMINDS_HOME", str(home))
    monkeypatch.setenv("MANYMINDS_CACHE", str(SHARED_CACHE))
    monkeypatch.delenv("MANYMINDS_DB", raising=False)
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "OPENROUTER_API_KEY", "PERPLEXITY_API_KEY",
                "GROQ_API_KEY", "DEEPSEEK_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    return home
