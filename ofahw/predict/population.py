"""Sums of per-part quantities (LUT features, FLOPs, params) over whole populations of encoded
subnets, as the searches need them: tens of thousands of subnets a second."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ofahw.space import Part, Space, part_cost


class PartSum:
    """``X`` (n, n_var) encoded subnets → (n, n_out): the sum of ``part_vector(part)`` over each
    subnet's parts.

    Spaces whose blocks depend only on their own choices (the mobile spaces: ``part_grid``) are
    summed with array indexing; others (ResNet50, where a block's width follows the previous
    stage) go subnet by subnet, remembering each distinct subnet.
    """

    def __init__(self, space: Space, part_vector: Callable[[Part], np.ndarray], n_out: int):
        self.space, self.part_vector, self.n_out = space, part_vector, n_out
        self._memo: dict[bytes, np.ndarray] = {}
        self._grid = None
        if hasattr(space, "part_grid"):
            self._build_grid()

    def _build_grid(self) -> None:
        fixed, grids = [], []
        for r in self.space.resolutions:
            parts, grid = self.space.part_grid(r)
            fixed.append(sum((self.part_vector(p) for p in parts), np.zeros(self.n_out)))
            grids.append([[[self.part_vector(p) for p in row] for row in block] for block in grid])
        genes = self.space.genes
        self._ks = np.array([i for i, g in enumerate(genes) if g.key == "ks"])
        self._e = np.array([i for i, g in enumerate(genes) if g.key == "e"])
        self._fixed = np.array(fixed)  # (n_r, n_out)
        self._grid = np.array(grids)  # (n_r, n_blocks, n_ks, n_e, n_out)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=int).reshape(-1, self.space.n_var)
        if self._grid is None:
            return np.array([self._one(x) for x in X]).reshape(len(X), self.n_out)
        r = X[:, -1]
        blocks = np.arange(len(self._ks))
        values = self._grid[r[:, None], blocks[None, :], X[:, self._ks], X[:, self._e]]  # (n, n_blocks, n_out)
        active = self.space.active_mask(X)[:, self._ks]
        return self._fixed[r] + np.einsum("nbo,nb->no", values, active.astype(float))

    def _one(self, x: np.ndarray) -> np.ndarray:
        key = self.space.repair(x[None])[0].tobytes()
        if key not in self._memo:
            parts = self.space.parts(self.space.decode(x))
            self._memo[key] = sum((self.part_vector(p) for p in parts), np.zeros(self.n_out))
        return self._memo[key]


def _cost_vector(part: Part) -> np.ndarray:
    return np.asarray(part_cost(part), dtype=float) / 1e6


_COSTS: dict[tuple, PartSum] = {}


def cost_model(space: Space) -> PartSum:
    """(n, 2): FLOPs (millions of multiply-accumulates) and params (millions) of encoded subnets
    (one model per space and resolutions: building it measures every part once)."""
    key = (space.name, space.resolutions)
    if key not in _COSTS:
        _COSTS[key] = PartSum(space, _cost_vector, 2)
    return _COSTS[key]
