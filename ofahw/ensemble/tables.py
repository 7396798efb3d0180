"""Per-sample class probabilities of front members (``ofahw evaluate``'s float16 memory-mapped
tables), reduced once to the few classes that can win, so that ensembles are scored by matrix
products over a whole population."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ofahw.errors import ConfigError, UserError


@dataclass
class CandidateTables:
    """``probs`` (M, S, N): member m's probability of sample n's s-th candidate class (samples last,
    so that reductions over the candidates run over contiguous rows);
    ``label_slot`` (N,): where the true label sits among the candidates (-1: not among them);
    ``outside`` (M, N): member m's highest probability among the classes left out for sample n. An
    ensemble's average of ``outside`` bounds every left-out class, so its top candidate is its top
    class overall wherever it beats that average.
    ``full`` and ``labels``: the (N, C) tables the candidates were taken from and the true labels,
    for :func:`exact_accuracy`."""

    probs: np.ndarray
    label_slot: np.ndarray
    outside: np.ndarray
    full: list[np.ndarray]
    labels: np.ndarray

    @property
    def n_samples(self) -> int:
        return self.probs.shape[2]


def open_tables(probs_dir: str | Path, members: list[str]) -> tuple[list[np.ndarray], np.ndarray]:
    """Memory-mapped (N, C) float16 tables of ``members`` (config hashes) and the labels (N,)."""
    probs_dir = Path(probs_dir)
    try:
        index = json.loads((probs_dir / "index.json").read_text())
        labels = np.load(probs_dir.parent / "labels.npy")
    except (OSError, ValueError) as exc:
        raise UserError(f"{probs_dir} is not a probability-table folder of `ofahw evaluate` ({exc})") from None
    missing = [m for m in members if m not in index]
    if missing:
        raise UserError(f"{probs_dir} has no probabilities for {len(missing)} front members (e.g. {missing[0]}); "
                        "run `ofahw evaluate` on the front first")
    tables = [_open_table(probs_dir / index[m]["file"]) for m in members]
    shapes = {t.shape for t in tables}
    if len(shapes) != 1 or next(iter(shapes))[0] != len(labels):
        raise UserError(f"the probability tables in {probs_dir} differ in shape or do not match labels.npy")
    return tables, labels


def _open_table(path: Path) -> np.ndarray:
    """One member's table, memory-mapped; a damaged file (cut short, a torn header) is named."""
    try:
        table = np.load(path, mmap_mode="r")
    except (OSError, ValueError, EOFError) as exc:
        raise UserError(f"probability table {path} is damaged or unreadable ({exc}); run `ofahw evaluate` again") from None
    if table.ndim != 2:
        raise UserError(f"probability table {path} has shape {table.shape}, not (images, classes)")
    return table


def candidates(tables: list[np.ndarray], labels: np.ndarray, n_candidates: int = 10, chunk: int = 1024) -> CandidateTables:
    """Keep, per sample, the ``n_candidates`` classes with the highest probability in any member;
    read the memory-mapped tables a chunk of samples at a time."""
    if n_candidates < 1:
        raise ConfigError(f"--candidates must be at least 1, got {n_candidates}")
    n, c = tables[0].shape
    s = min(n_candidates, c)
    probs = np.empty((len(tables), s, n), dtype=np.float32)
    slot = np.full(n, -1, dtype=np.int64)
    outside = np.zeros((len(tables), n), dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        block = np.stack([np.asarray(t[start:stop], dtype=np.float32) for t in tables])  # (M, b, C)
        best = block.max(axis=0)  # (b, C)
        order = np.argsort(-best, axis=1)
        keep = order[:, :s]
        probs[:, :, start:stop] = np.take_along_axis(block, keep[None], axis=2).transpose(0, 2, 1)
        if s < c:
            rest = order[:, s:]
            outside[:, start:stop] = np.take_along_axis(block, rest[None], axis=2).max(axis=2)
        hit = keep == labels[start:stop, None]
        slot[start:stop] = np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
    return CandidateTables(probs, slot, outside, tables, np.asarray(labels))


def exact_accuracy(X: np.ndarray, tables: list[np.ndarray], labels: np.ndarray, top5: bool = False,
                   chunk_bytes: int = 1 << 26) -> tuple[np.ndarray, np.ndarray | None]:
    """Top-1 (and top-5) of ensembles ``X`` (n, M) from the full (N, C) tables, each (n,).

    Sums of float16 values are exact in float64, so ties are seen as ties wherever they occur: a
    sample counts for top-1 when its true class's summed probability is at least every other
    class's, and for top-5 when fewer than five classes beat it. The tables are read a chunk of
    samples at a time (memory-mapped tables need no RAM); ensembles with no member score 0."""
    X = np.asarray(X, dtype=bool)
    used = np.flatnonzero(X.any(axis=0))
    n, c = tables[0].shape
    top1, top5_out = np.zeros(len(X)), (np.zeros(len(X)) if top5 else None)
    if len(X) == 0 or len(used) == 0:
        return top1, top5_out
    group = 16  # ensembles summed at once
    step = max(1, chunk_bytes // (8 * c * max(len(used), group)))
    weights = X[:, used].astype(np.float64)
    for start in range(0, n, step):
        stop = min(start + step, n)
        block = np.stack([np.asarray(tables[m][start:stop], dtype=np.float64) for m in used])  # (k, b, C)
        truth = labels[start:stop]
        rows = np.arange(stop - start)
        for g in range(0, len(X), group):
            sums = np.tensordot(weights[g:g + group], block, axes=(1, 0))  # (e, b, C)
            label_sum = sums[:, rows, truth]  # (e, b)
            top1[g:g + group] += (label_sum >= sums.max(axis=2)).sum(axis=1)
            if top5:
                top5_out[g:g + group] += ((sums > label_sum[:, :, None]).sum(axis=2) < 5).sum(axis=1)
    empty = ~X.any(axis=1)
    top1 = np.where(empty, 0.0, top1 / n)
    if top5:
        top5_out = np.where(empty, 0.0, top5_out / n)
    return top1, top5_out
