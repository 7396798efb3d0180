"""Whole-network latency from per-block LUT entries: a calibrated sum and a fitted linear model,
chosen by cross-validation on the LUT's whole-network samples, with a held-out error report.

All are scikit-learn estimators over a feature matrix built from the LUT: the summed latency of
the subnet's parts in each group (a group is the part type and its output width, e.g. one stage of
inverted-residual blocks), the number of parts, and which of the LUT's resolutions the subnet takes.
Their parameters are plain numbers, so they are stored in the LUT's JSON and rebuilt without pickle.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.utils.validation import check_is_fitted, validate_data

from ofahw.errors import LutError
from ofahw.fidelity import latency_fidelity
from ofahw.lut.table import LatencyTable
from ofahw.space import Space

MODELS = ("calibrated-sum", "grouped-linear", "resolution-sum")
_OUTPUT = re.compile(r"-output:(?:\d+x\d+x)?(\d+)")


def group_label(key: str) -> str:
    """Part type and output width of a part key, e.g. ``expanded_conv:48``: one stage of blocks."""
    match = _OUTPUT.search(key)
    return f"{key.split('-', 1)[0]}:{match.group(1) if match else '?'}"


class PartFeatures:
    """Configs → (n, ``width``) matrix: per-group LUT latency sums (ms), the part count, then one
    column per resolution of ``resolutions`` (none by default), 1 where the subnet takes it. Every
    column is a sum over the subnet's parts (the resolution's is set by its first part, the one that
    takes the 3-channel image), so a population of encoded subnets sums them too
    (:class:`ofahw.predict.population.PartSum`). ``column="energy_mj"``: of energy per inference (mJ)
    instead. ``grouping`` names a part key's group (default: its stage, :func:`group_label`)."""

    def __init__(self, table: LatencyTable, space: Space, labels: list[str] | None = None, column: str = "value_ms",
                 grouping: Callable[[str], str] = group_label, resolutions: Sequence[int] = ()):
        self.table = table
        self.space = space
        self.column = column
        self.grouping = grouping
        self.labels = labels or sorted({grouping(p.key) for p in space.catalogue(table.resolutions).values()})
        self.resolutions = [int(r) for r in resolutions]
        self.width = len(self.labels) + 1 + len(self.resolutions)
        self._index = {label: i for i, label in enumerate(self.labels)}
        self._resolution_index = {r: len(self.labels) + 1 + i for i, r in enumerate(self.resolutions)}
        self._blocks = table.blocks

    def part_vector(self, part) -> np.ndarray:
        """One part's contribution, (width,): its LUT latency in its group's column, 1 in the count,
        and for the part that takes the image, 1 in its resolution's column."""
        out = np.zeros(self.width)
        label = self.grouping(part.key)
        if label not in self._index:
            raise LutError(f"LUT predictor has no group for part '{part.key}'")
        row = self._blocks.get(part.key)
        if row is None:
            raise LutError(f"LUT has no entry for block '{part.key}' (was its resolution profiled?)")
        out[self._index[label]] = row[self.column]
        out[len(self.labels)] = 1.0
        if self.resolutions and part.input_shape[0] == 3:
            resolution = int(part.input_shape[-1])
            if resolution not in self._resolution_index:
                raise LutError(f"LUT predictor was fitted at resolutions {self.resolutions}, not {resolution}")
            out[self._resolution_index[resolution]] = 1.0
        return out

    def row(self, config: dict) -> np.ndarray:
        return sum((self.part_vector(p) for p in self.space.parts(config)), np.zeros(self.width))

    def __call__(self, configs: list[dict]) -> np.ndarray:
        return np.array([self.row(c) for c in configs]).reshape(len(configs), self.width)

    def block_sum(self, X: np.ndarray) -> np.ndarray:
        """The uncalibrated sum of the parts' LUT entries, (n,), of rows of this matrix."""
        return X[:, :len(self.labels)].sum(axis=1)


class LutLatencyRegressor(RegressorMixin, BaseEstimator):
    """Latency (ms) from :class:`PartFeatures` whose last ``n_resolutions`` columns are its resolutions.

    ``model="calibrated-sum"``: ``a * (sum of all parts) + b``. ``model="grouped-linear"``:
    non-negative weights per group and per part count, plus an intercept. ``model="resolution-sum"``:
    ``a_r * (sum of all parts) + b_r`` for the subnet's resolution ``r`` (isolated blocks can over-count
    a network by a share that differs with resolution: OpenVINO bf16 at batch 8 sums 1.19x its networks
    at 160 and 1.25x at 224); a resolution with fewer than two samples takes the pooled line. Fitted by
    weighted least squares with weights 1/y², i.e. on relative error, which is what the user judges.
    """

    def __init__(self, *, model: str = "grouped-linear", n_resolutions: int = 0):
        self.model = model
        self.n_resolutions = n_resolutions

    def _groups(self, X: np.ndarray) -> int:
        return X.shape[1] - 1 - self.n_resolutions

    def _design(self, X: np.ndarray) -> np.ndarray:
        groups = self._groups(X)
        total = X[:, :groups].sum(axis=1, keepdims=True)
        if self.model == "calibrated-sum":
            return total
        if self.model == "grouped-linear":
            return X[:, :groups + 1]
        taken = X[:, groups + 1:]
        return np.hstack([taken * total, taken])

    def fit(self, X, y, sample_weight=None):
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.model == "resolution-sum" and self.n_resolutions < 1:
            raise ValueError("model resolution-sum needs features with resolution columns")
        X, y = validate_data(self, X, y)
        weight = 1.0 / np.square(y) if sample_weight is None else sample_weight
        if self.model == "resolution-sum":
            return self._fit_per_resolution(X, y, weight)
        reg = LinearRegression(positive=self.model == "grouped-linear").fit(self._design(X), y, sample_weight=weight)
        self.coef_, self.intercept_ = reg.coef_.astype(float), float(reg.intercept_)
        return self

    def _fit_per_resolution(self, X: np.ndarray, y: np.ndarray, weight: np.ndarray):
        total = X[:, :self._groups(X)].sum(axis=1)

        def line(taken: np.ndarray) -> tuple[float, float]:
            reg = LinearRegression().fit(total[taken, None], y[taken], sample_weight=weight[taken])
            return float(reg.coef_[0]), float(reg.intercept_)

        pooled = line(np.ones(len(y), dtype=bool))
        lines = [line(taken) if taken.sum() >= 2 else pooled for taken in X[:, -self.n_resolutions:].T.astype(bool)]
        slopes, intercepts = zip(*lines, strict=True)
        self.coef_, self.intercept_ = np.array(slopes + intercepts), 0.0
        return self

    def predict(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return self._design(X) @ self.coef_ + self.intercept_

    def to_dict(self) -> dict:
        check_is_fitted(self)
        return {"model": self.model, "coef": self.coef_.tolist(), "intercept": self.intercept_}

    @classmethod
    def from_dict(cls, data: dict, n_features: int, n_resolutions: int = 0) -> LutLatencyRegressor:
        try:
            est = cls(model=data["model"], n_resolutions=n_resolutions)
            est.coef_ = np.asarray(data["coef"], dtype=float)
            est.intercept_ = float(data["intercept"])
        except (KeyError, TypeError, ValueError) as exc:
            raise LutError(f"LUT predictor parameters are malformed: {exc}") from None
        if est.model == "resolution-sum" and not n_resolutions:
            raise LutError("LUT predictor resolution-sum is stored without the resolutions it was fitted at")
        expected = {"calibrated-sum": 1, "grouped-linear": n_features - n_resolutions, "resolution-sum": 2 * n_resolutions}
        if est.model not in MODELS or len(est.coef_) != expected[est.model]:
            raise LutError("LUT predictor parameters do not fit its feature groups")
        est.n_features_in_ = n_features
        return est

def stored_predictor(table: LatencyTable, space: Space, params: dict,
                     column: str = "value_ms") -> tuple[PartFeatures, LutLatencyRegressor]:
    """The features and regressor a LUT's stored predictor ``params`` (as :func:`fit_predictor`
    returns them) describe; a predictor stored without ``resolutions`` has no resolution columns."""
    features = PartFeatures(table, space, labels=list(params["labels"]), column=column,
                            resolutions=params.get("resolutions", ()))
    regressor = LutLatencyRegressor.from_dict(params, n_features=features.width, n_resolutions=len(features.resolutions))
    return features, regressor


def fit_predictor(table: LatencyTable, space: Space, folds: int = 5, seed: int = 0, column: str = "value_ms",
                  models: tuple[str, ...] = MODELS, why: str | None = None) -> tuple[dict, dict]:
    """Choose and fit the LUT's predictor of ``column`` (latency, or ``energy_mj``) among ``models``
    (``why``: the reason for fewer than all, kept in the report). Returns (predictor parameters,
    report) for the JSON.

    Every candidate is scored by K-fold cross-validation on the settled whole-network samples
    (out-of-fold predictions only); the one with the lowest MAPE is refitted on all of them. When
    too few settled (a busy device), the unsettled ones are used too and the report says so: failing
    here would fail every rerun as well, since a rerun keeps what was measured.
    """
    needed = max(folds, 5)
    settled = [r for r in table.networks if r["settled"]]
    networks = settled if len(settled) >= needed else table.networks
    if len(networks) < needed:
        raise LutError(f"need at least {needed} whole-network samples to fit a predictor, have {len(networks)}")
    features = PartFeatures(table, space, column=column, resolutions=table.resolutions)
    X = features([r["config"] for r in networks])
    y = np.array([r[column] for r in networks])
    raw_ratio = features.block_sum(X) / y
    cv = KFold(n_splits=folds, shuffle=True, random_state=seed)
    candidates = {}
    unknown = set(models) - set(MODELS)
    if not models or unknown:
        raise ValueError(f"predictor models must be some of {MODELS}, got {models}")
    for model in models:
        oof = cross_val_predict(LutLatencyRegressor(model=model, n_resolutions=len(features.resolutions)), X, y, cv=cv)
        candidates[model] = latency_fidelity(y, oof)
    best = min(candidates, key=lambda m: candidates[m]["mape"])
    fitted = LutLatencyRegressor(model=best, n_resolutions=len(features.resolutions)).fit(X, y)
    report = {
        "method": f"{folds}-fold cross-validation on {len(y)} whole-network samples measured on the target; out-of-fold predictions",
        "chosen": best,
        "candidates": candidates,
        **({"candidates_why": why} if why else {}),
        "raw_block_sum_over_measured": {"mean": float(raw_ratio.mean()), "std": float(raw_ratio.std()), "n": int(len(y))},
        "excluded_unsettled": len(table.networks) - len(networks),
        "unsettled_used": sum(not r["settled"] for r in networks),
    }
    return {**fitted.to_dict(), "labels": features.labels, "resolutions": features.resolutions}, report
