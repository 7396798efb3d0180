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


# The resolution lists OFA's encoders are commonly built with, by length. The encoders one-hot exactly
# the list they were given (``MobileNetArchEncoder(image_size_list=...)``, default [224]) and a
# checkpoint does not store it, so its input width is all there is to go on.
COMMON_RESOLUTION_LISTS = (
    (224,),
    (128, 160, 192, 224),
    tuple(range(160, 225, 16)),
    tuple(range(128, 225, 16)),
    tuple(range(128, 225, 4)),
)
TUTORIAL_RESOLUTIONS = tuple(range(112, 225, 16))


class OfaAccuracyPredictor:
    """An OFA-format accuracy predictor checkpoint, evaluated with numpy over whole populations.

    Two layouts are read: ``ofa.nas.accuracy_predictor.AccuracyPredictor`` (``layers.*`` and
    ``base_acc``; features laid out by ``MobileNetArchEncoder`` / ``ResNetArchEncoder``: the
    one-hot of the encoder's resolution list first) and the tutorial's plain ``nn.Sequential`` over
    128 inputs (kernel and expand one-hots of 20 blocks, then the resolution in steps of 16 from
    112). ``resolutions`` is the list the checkpoint knows; a subnet at any other resolution is
    refused, never predicted.
    """

    def __init__(self, layers, base: float, layout: str, resolutions: tuple[int, ...], n_dim: int, space: Space,
                 path: str, how: str):
        self.layers, self.base, self.layout, self.n_dim = layers, base, layout, n_dim
        self.resolutions, self.space, self.path, self.how = tuple(resolutions), space, path, how
        self.columns = _ofa_columns(space, layout, resolutions)
        listed = ", ".join(map(str, self.resolutions))
        self.source = f"predicted: OFA accuracy predictor {path} ({layout} layout, resolutions {listed} {how})"

    @classmethod
    def load(cls, path, space: Space, resolutions=None) -> OfaAccuracyPredictor:
        """Read ``path`` for encodings of ``space``. ``resolutions``: the list the checkpoint was
        trained with; without it, inferred from the input width where one common list fits."""
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
        known, how = _checkpoint_resolutions(space, layout, n_dim, path, resolutions)
        return cls(layers, base, layout, known, n_dim, space, str(path), how)

    def restricted(self, space: Space) -> OfaAccuracyPredictor:
        """The same checkpoint over encodings of ``space`` (the same space with other resolutions)."""
        return type(self)(self.layers, self.base, self.layout, self.resolutions, self.n_dim, space, self.path, self.how)

    def features(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=int)
        r = self.space.genes[-1]
        unseen = self.columns[-1, X[:, -1]] < 0
        if unseen.any():
            asked = sorted({r.choices[i] for i in X[unseen, -1]})
            raise ConfigError(f"OFA accuracy predictor {self.path} was trained at resolutions "
                              f"{', '.join(map(str, self.resolutions))}; it cannot predict resolution {asked}")
        return _onehot(X, self.columns, self.space.active_mask(X), self.n_dim)

    def predict_encoded(self, X: np.ndarray) -> np.ndarray:
        """Top-1 (fraction), shape (n,)."""
        return _mlp(self.features(X), self.layers) + self.base


def _family(space: Space) -> str:
    """mbv3, proxyless or resnet50: which of OFA's encoders lays out the space's features."""
    return space.name.split("-")[1]


def _arch_width(space: Space) -> int:
    """Inputs of OFA's encoding of ``space`` beside the resolution one-hot."""
    if _family(space) in ("mbv3", "proxyless"):
        return 6 * space.list_lengths["ks"]  # kernel and expand one-hots of every block
    return 2 + 3 * 6 + 3 * space.list_lengths["e"]  # resnet50: stem skip, 6 widths, every block's expand


def _checkpoint_resolutions(space: Space, layout: str, n_dim: int, path, stated) -> tuple[tuple[int, ...], str]:
    """The resolution list a checkpoint one-hots, and how it was found."""
    if layout == "tutorial":
        if _family(space) != "mbv3" or n_dim != 128:
            raise UserError(f"{path}: the tutorial layout (128 inputs) is for OFA-MBV3 only, not {space.name}")
        if stated and tuple(stated) != TUTORIAL_RESOLUTIONS:
            raise UserError(f"{path} has the tutorial layout, which always encodes resolutions 112, 128, ..., 224")
        return TUTORIAL_RESOLUTIONS, "(the tutorial's fixed list)"
    n_r = n_dim - _arch_width(space)
    if n_r < 1:
        raise UserError(f"{path} takes {n_dim} inputs; OFA's encoding of {space.name} needs {_arch_width(space)} "
                        "plus one per resolution: not a predictor for this space")
    if stated:
        stated = tuple(sorted(int(r) for r in stated))
        if len(stated) != n_r:
            raise UserError(f"{path} takes {n_dim} inputs: {n_r} resolutions beside OFA's encoding of {space.name}, "
                            f"but --accuracy-resolutions lists {len(stated)}")
        return stated, "(as stated)"
    full = tuple(get_space(space.name).resolutions)
    fits = sorted({c for c in (*COMMON_RESOLUTION_LISTS, full) if len(c) == n_r})
    if len(fits) != 1:
        what = "several common lists fit" if fits else "no common list has that many"
        raise UserError(f"{path} takes {n_dim} inputs: {n_r} resolutions beside OFA's encoding of {space.name}, and "
                        f"{what}; state the list the checkpoint was trained with: --accuracy-resolutions 160,176,...")
    return fits[0], "(inferred from its input width)"


def _ofa_columns(space: Space, layout: str, known: tuple[int, ...]) -> np.ndarray:
    """(n_var, max choices) feature column of each gene choice (-1: no feature) for OFA's layouts;
    a resolution the checkpoint does not know has none (and is refused when asked for)."""
    genes = space.genes
    columns = np.full((len(genes), max(len(g.choices) for g in genes)), -1, dtype=int)
    r_gene = genes[-1]
    if layout == "tutorial":
        for g, gene in enumerate(genes):
            if gene.key in ("ks", "e"):
                columns[g, :3] = (0 if gene.key == "ks" else 60) + 3 * gene.index + np.arange(3)
        columns[-1, : len(r_gene.choices)] = [120 + known.index(r) if r in known else -1 for r in r_gene.choices]
        return columns
    n_r = len(known)
    if _family(space) in ("mbv3", "proxyless"):
        n_blocks = space.list_lengths["ks"]
        for g, gene in enumerate(genes):
            if gene.key in ("ks", "e"):
                columns[g, :3] = n_r + (0 if gene.key == "ks" else 3 * n_blocks) + 3 * gene.index + np.arange(3)
    else:  # resnet50: resolution, stem skip, 6 widths, 18 expand ratios
        for g, gene in enumerate(genes):
            if gene.key == "d" and gene.index == 0:
                columns[g, :2] = [n_r, n_r + 1]
            elif gene.key == "w":
                columns[g, :3] = n_r + 2 + 3 * gene.index + np.arange(3)
            elif gene.key == "e":
                columns[g, :3] = n_r + 2 + 18 + 3 * gene.index + np.arange(3)
    columns[-1, : len(r_gene.choices)] = [known.index(r) if r in known else -1 for r in r_gene.choices]
    return columns
