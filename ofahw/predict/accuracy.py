"""Accuracy sources for the searches, all vectorised over encoded populations (n, n_var) and all
giving ImageNet top-1 as a fraction:

- :class:`OfaAccuracyPredictor`: an OFA-format predictor checkpoint, the MLP of
  ``ofa.nas.accuracy_predictor`` over OFA's one-hot arch encoding (MBV3, ProxylessNAS, ResNet50),
  or the 128-input MLP of OFA's tutorial (MBV3 w1.0), which MIT publishes pretrained;
- :class:`FittedAccuracyPredictor`: fitted here from (config, top-1) data, stored as JSON.
"""

from __future__ import annotations

import numpy as np

from ofahw.errors import ConfigError, UserError
from ofahw.space import Space, get_space


def _onehot(X: np.ndarray, columns: np.ndarray, active: np.ndarray, n_dim: int) -> np.ndarray:
    """Features (n, n_dim): a 1 at ``columns[g, X[:, g]]`` for every active gene that has one."""
    cols = columns[np.arange(X.shape[1])[None, :], X]  # (n, n_var)
    keep = active & (cols >= 0)
    out = np.zeros((len(X), n_dim), dtype=np.float32)
    rows = np.broadcast_to(np.arange(len(X))[:, None], cols.shape)
    out[rows[keep], cols[keep]] = 1.0
    return out


def _mlp(features: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray | None]]) -> np.ndarray:
    """ReLU MLP with a linear last layer; ``layers`` as (weight (out, in), bias or None)."""
    h = features
    for i, (w, b) in enumerate(layers):
        h = h @ w.T + (0.0 if b is None else b)
        if i < len(layers) - 1:
            np.maximum(h, 0.0, out=h)
    return h[:, 0]


class OfaAccuracyPredictor:
    """An OFA-format accuracy predictor checkpoint, evaluated with numpy over whole populations.

    Two layouts are read: ``ofa.nas.accuracy_predictor.AccuracyPredictor`` (``layers.*`` and
    ``base_acc``; features laid out by ``MobileNetArchEncoder`` / ``ResNetArchEncoder``: the
    resolution one-hot first, over the space's full resolution range) and the tutorial's plain
    ``nn.Sequential`` over 128 inputs (kernel and expand one-hots of 20 blocks, then the resolution
    in steps of 16 from 112).
    """

    def __init__(self, layers, base: float, columns: np.ndarray, n_dim: int, space: Space, source: str):
        self.layers, self.base, self.columns, self.n_dim = layers, base, columns, n_dim
        self.space, self.source = space, source

    @classmethod
    def load(cls, path, space: Space) -> OfaAccuracyPredictor:
        from ofahw.space.weights import load_state_dict

        state = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in load_state_dict(path).items()}
        if "base_acc" in state:
            names = sorted({k.rsplit(".", 1)[0] for k in state if k.startswith("layers.")})
            layers = [(state[f"{n}.weight"], state.get(f"{n}.bias")) for n in names]
            base = float(state["base_acc"].reshape(-1)[0])
            layout = "ofa.nas"
        elif "0.weight" in state:
            names = sorted({k.split(".", 1)[0] for k in state}, key=int)
            layers = [(state[f"{n}.weight"], state.get(f"{n}.bias")) for n in names]
            base, layout = 0.0, "tutorial"
        else:
            raise UserError(f"{path} is not an OFA accuracy-predictor checkpoint (expected layers.* and base_acc, "
                            f"or the tutorial's 0.weight ... 6.weight)")
        n_dim = layers[0][0].shape[1]
        columns = _ofa_columns(space, layout, n_dim, path)
        return cls(layers, base, columns, n_dim, space, f"predicted: OFA accuracy predictor {path} ({layout} layout)")

    def features(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=int)
        return _onehot(X, self.columns, self.space.active_mask(X), self.n_dim)

    def predict_encoded(self, X: np.ndarray) -> np.ndarray:
        """Top-1 (fraction), shape (n,)."""
        return _mlp(self.features(X), self.layers) + self.base


def _ofa_columns(space: Space, layout: str, n_dim: int, path) -> np.ndarray:
    """(n_var, max choices) feature column of each gene choice (-1: no feature) for OFA's layouts."""
    genes = space.genes
    columns = np.full((len(genes), max(len(g.choices) for g in genes)), -1, dtype=int)
    family = space.name.split("-")[1]
    if layout == "tutorial":
        if family != "mbv3" or n_dim != 128:
            raise UserError(f"{path}: the tutorial layout (128 inputs) is for OFA-MBV3 only, not {space.name}")
        for g, gene in enumerate(genes):
            if gene.key in ("ks", "e"):
                columns[g, :3] = (0 if gene.key == "ks" else 60) + 3 * gene.index + np.arange(3)
            elif gene.key == "r":
                bad = [r for r in gene.choices if (r - 112) % 16 or not 112 <= r <= 224]
                if bad:
                    raise ConfigError(f"{path} knows resolutions 112, 128, ..., 224 only; the search asks for {bad}")
                columns[g, : len(gene.choices)] = [120 + (r - 112) // 16 for r in gene.choices]
        return columns
    full = list(get_space(space.name).resolutions)  # OFA's encoders one-hot the whole range
    n_r = len(full)
    if family in ("mbv3", "proxyless"):
        n_blocks = space.list_lengths["ks"]
        expected = n_r + 6 * n_blocks
        for g, gene in enumerate(genes):
            if gene.key in ("ks", "e"):
                columns[g, :3] = n_r + (0 if gene.key == "ks" else 3 * n_blocks) + 3 * gene.index + np.arange(3)
    else:  # resnet50: resolution, stem skip, 6 widths, 18 expand ratios
        expected = n_r + 2 + 3 * 6 + 3 * space.list_lengths["e"]
        for g, gene in enumerate(genes):
            if gene.key == "d" and gene.index == 0:
                columns[g, :2] = [n_r, n_r + 1]
            elif gene.key == "w":
                columns[g, :3] = n_r + 2 + 3 * gene.index + np.arange(3)
            elif gene.key == "e":
                columns[g, :3] = n_r + 2 + 18 + 3 * gene.index + np.arange(3)
    if n_dim != expected:
        raise UserError(f"{path} takes {n_dim} inputs; OFA's encoding of {space.name} over resolutions "
                        f"{full[0]}-{full[-1]} has {expected}")
    r = [g for g, gene in enumerate(genes) if gene.key == "r"][0]
    columns[r, : len(genes[r].choices)] = [full.index(v) for v in genes[r].choices]
    return columns
