"""Accuracy predictors fitted here from (config, top-1) data, chosen by cross-validated Kendall τ
and stored as JSON (weights as lists, no pickle)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ofahw._io import atomic_write_text, strict_json
from ofahw.errors import ConfigError, UserError
from ofahw.fidelity import accuracy_fidelity, chosen_scores
from ofahw.predict.accuracy import _mlp, _onehot
from ofahw.predict.population import cost_model
from ofahw.space import Space, get_space

FORMAT = "ofahw-accuracy-predictor"
CANDIDATES = {
    # standardised features, the penalty chosen by leave-one-out on the training data: on the shared
    # OFA-MBV3 data it needs almost none (alpha ~1e-3), and beat a fixed alpha=1 (held-out tau .900 vs .884)
    "ridge": lambda seed: make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-4, 3, 29))),
    "mlp": lambda seed: MLPRegressor(hidden_layer_sizes=(64, 64), alpha=1.0, max_iter=3000, random_state=seed),
}


def load_accuracy_data(path: str | Path, space: Space) -> tuple[list[dict], np.ndarray]:
    """(configs, top-1 fractions) from JSON lines or CSV; each record holds the config's keys and
    ``top1`` (a fraction; CSV list columns hold JSON lists)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read accuracy data {path}: {exc.strerror}") from None
    if path.suffix == ".csv":
        records = [{k: json.loads(v) for k, v in row.items()} for row in csv.DictReader(text.splitlines())]
    else:
        try:
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise UserError(f"accuracy data {path} is not JSON lines: {exc.msg} (line {exc.lineno})") from None
    configs, y = [], []
    for i, record in enumerate(records, 1):
        top1 = record.pop("top1", None) if isinstance(record, dict) else None
        if not isinstance(top1, (int, float)) or not 0 <= top1 <= 1:
            raise UserError(f"accuracy data {path}, record {i}: needs 'top1' as a fraction in [0, 1]")
        wanted = set(space.list_lengths) | {"r"}
        try:
            configs.append(space.canonical({k: v for k, v in record.items() if k in wanted}))
        except ConfigError as exc:
            raise UserError(f"accuracy data {path}, record {i}: {exc}") from None
        y.append(float(top1))
    if len(y) < 10:
        raise UserError(f"accuracy data {path} holds {len(y)} records; a predictor needs at least 10")
    return configs, np.array(y)


class FittedAccuracyPredictor:
    """Top-1 from one-hot features of the active genes, the resolution, and log FLOPs / params
    (with their square and products: on OFA-MBV3 they lifted a small MLP's held-out Kendall tau
    from 0.87 to 0.90), through a ridge model or the MLP, whichever cross-validates better."""

    resolutions = None  # resolution is a numeric feature: it predicts at any

    def __init__(self, space: Space, layers, y_mean: float, y_scale: float, report: dict, source: str = ""):
        self.space, self.layers, self.y_mean, self.y_scale, self.report = space, layers, y_mean, y_scale, report
        self.source = source or f"predicted: accuracy predictor fitted on {report.get('trained_on', '?')}"
        self._columns, self._n_onehot = _gene_columns(space)

    # -- features ---------------------------------------------------------------------------
    def features(self, X: np.ndarray) -> np.ndarray:
        return _features(self.space, X, self._columns, self._n_onehot)

    def predict_encoded(self, X: np.ndarray) -> np.ndarray:
        """Top-1 (fraction), shape (n,)."""
        return _mlp(self.features(X), self.layers) * self.y_scale + self.y_mean

    # -- fitting ----------------------------------------------------------------------------
    @classmethod
    def fit(cls, configs: list[dict], y: np.ndarray, space: Space, seed: int = 0, trained_on: str = "") -> FittedAccuracyPredictor:
        space = space.with_resolutions(sorted({c["r"] for c in configs}))
        X = np.array([space.encode(c) for c in configs])
        columns, n_onehot = _gene_columns(space)
        F = _features(space, X, columns, n_onehot)
        y_mean, y_scale = float(y.mean()), float(y.std() or 1.0)
        z = (y - y_mean) / y_scale
        folds = KFold(5, shuffle=True, random_state=seed)
        candidates = {}
        for name, make in CANDIDATES.items():
            pred = cross_val_predict(make(seed), F, z, cv=folds) * y_scale + y_mean
            candidates[name] = accuracy_fidelity(y, pred)
        chosen = max(candidates, key=lambda n: candidates[n]["kendall_tau"])
        model = CANDIDATES[chosen](seed).fit(F, z)
        if chosen == "ridge":
            scaler, ridge = model[0], model[1]
            weight = ridge.coef_ / scaler.scale_
            layers = [(weight.reshape(1, -1).astype(np.float32),
                       np.array([ridge.intercept_ - weight @ scaler.mean_], dtype=np.float32))]
        else:
            layers = [(w.T.astype(np.float32), b.astype(np.float32)) for w, b in zip(model.coefs_, model.intercepts_, strict=True)]
        report = {"method": "5-fold cross-validation, out-of-fold predictions", "n": int(len(y)), "seed": seed,
                  "candidates": candidates, "chosen": chosen, "trained_on": trained_on,
                  "resolutions": list(space.resolutions)}
        return cls(space, layers, y_mean, y_scale, report)

    # -- files ------------------------------------------------------------------------------
    def to_json(self) -> dict:
        return {"format": FORMAT, "space": self.space.name, "y_mean": self.y_mean, "y_scale": self.y_scale,
                "layers": [{"weight": w.tolist(), "bias": None if b is None else b.tolist()} for w, b in self.layers],
                "report": self.report}

    def save(self, path: str | Path) -> None:
        atomic_write_text(Path(path), strict_json(self.to_json()) + "\n")

    @classmethod
    def load(cls, path: str | Path, space: Space | None = None) -> FittedAccuracyPredictor:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if data.get("format") != FORMAT:
                raise ValueError("not an ofahw accuracy predictor")
            layers = [(np.array(layer["weight"], dtype=np.float32),
                       None if layer["bias"] is None else np.array(layer["bias"], dtype=np.float32)) for layer in data["layers"]]
            full = get_space(data["space"])
            y_mean, y_scale, report = float(data["y_mean"]), float(data["y_scale"]), data["report"]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UserError(f"cannot read accuracy predictor {path}: {exc}") from None
        if space is not None and space.name != full.name:
            raise UserError(f"accuracy predictor {path} is for space {full.name}, not {space.name}")
        tau = chosen_scores(report)["kendall_tau"]
        source = f"predicted: accuracy predictor {path} (fitted on {report.get('trained_on') or '?'}, CV Kendall tau {tau:.3f})"
        predictor = cls(full.with_resolutions(report["resolutions"]), layers, y_mean, y_scale, report, source=source)
        return predictor.restricted(space) if space is not None else predictor

    def restricted(self, space: Space) -> FittedAccuracyPredictor:
        """The same predictor over encodings of ``space`` (the same space with fewer resolutions)."""
        return type(self)(space, self.layers, self.y_mean, self.y_scale, self.report, self.source)


def _gene_columns(space: Space) -> tuple[np.ndarray, int]:
    """One feature column per choice of every gene but the resolution (which enters as a number)."""
    genes = space.genes
    columns = np.full((len(genes), max(len(g.choices) for g in genes)), -1, dtype=int)
    n = 0
    for g, gene in enumerate(genes):
        if gene.key != "r":
            columns[g, : len(gene.choices)] = n + np.arange(len(gene.choices))
            n += len(gene.choices)
    return columns, n


def _features(space: Space, X: np.ndarray, columns: np.ndarray, n_onehot: int) -> np.ndarray:
    X = np.asarray(X, dtype=int)
    r = np.asarray(space.genes[-1].choices, dtype=np.float32)[X[:, -1]] / 224.0
    onehot = _onehot(X, columns, space.active_mask(X), n_onehot)
    log_cost = np.log(cost_model(space)(X))
    flops, params = log_cost[:, 0], log_cost[:, 1]
    return np.column_stack([onehot, r, r**2, flops, flops**2, flops * r, params]).astype(np.float32)


