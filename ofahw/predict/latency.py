"""Latency of subnets from a target's LUT: the fitted predictor, with the raw block sum beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ofahw.errors import LutError
from ofahw.fidelity import chosen_scores
from ofahw.lut import LatencyTable, read_for_batch, stored_predictor
from ofahw.predict.population import PartSum
from ofahw.space import Space, get_space


class LutLatencyModel:
    """Predicts the LUT's statistic (e.g. p10) of whole-network latency, in ms, on its target; with
    ``energy``, its energy per inference in mJ (a LUT profiled with a power sensor)."""

    def __init__(self, table: LatencyTable, space: Space, path: Path | None = None, energy: bool = False):
        self.table, self.space, self.path, self.energy = table, space, path, energy
        params = table.energy_predictor if energy else table.predictor
        if not isinstance(params, dict) or "labels" not in params:
            raise LutError(f"LUT {path} has no fitted {'energy ' if energy else ''}predictor; "
                           + ("profile it with --energy on a target with a power sensor" if energy else
                              "re-run `ofahw profile` to fit one"))
        self.features, self.regressor = stored_predictor(table, space, params, column="energy_mj" if energy else "value_ms")

    def energy_model(self) -> LutLatencyModel:
        """The same LUT's energy model (mJ per inference)."""
        return LutLatencyModel(self.table, self.space, self.path, energy=True)

    @classmethod
    def load(cls, csv_path: str | Path, batch: int | None = None) -> LutLatencyModel:
        """The model of ``csv_path``, or with ``batch`` of its batch-``batch`` LUT (:func:`ofahw.lut.read_for_batch`)."""
        path, table = read_for_batch(csv_path, batch)
        return cls(table, get_space(table.space_name), path)

    @property
    def target(self) -> str:
        return self.table.target_name

    @property
    def label(self) -> str:
        """The LUT's name in objectives and columns (target, and batch size where not 1)."""
        return self.table.label

    def _check(self, configs: list[dict]) -> list[dict]:
        configs = [self.space.canonical(c) for c in configs]
        profiled = self.table.resolutions
        for c in configs:
            if c["r"] not in profiled:
                raise LutError(f"resolution {c['r']} was not profiled in LUT {self.path} (profiled: {profiled})")
        return configs

    def predict(self, configs: list[dict]) -> np.ndarray:
        """Shape (n,), milliseconds."""
        return self.regressor.predict(self.features(self._check(configs)))

    def population(self, space: Space) -> PartSum:
        """A vectorised form of :meth:`predict` over encoded subnets of ``space`` (which must
        hold only resolutions this LUT profiled): call ``predict_encoded`` with it."""
        missing = set(space.resolutions) - set(self.table.resolutions)
        if missing:
            raise LutError(f"resolutions {sorted(missing)} were not profiled in LUT {self.path}")
        return PartSum(space, self.features.part_vector, self.features.width)

    def predict_encoded(self, features: PartSum, X: np.ndarray) -> np.ndarray:
        """Shape (n,), milliseconds, for encoded subnets ``X`` (n, n_var)."""
        return self.regressor.predict(features(X))

    def block_sum(self, configs: list[dict]) -> np.ndarray:
        """Uncalibrated sum of the parts' LUT entries (ms)."""
        return self.features.block_sum(self.features(self._check(configs)))

    def explain(self, config: dict) -> dict:
        """One prediction with its provenance, ready for ``--json``."""
        config = self._check([config])[0]
        report = self.table.report
        chosen = chosen_scores(report)
        latency = float(self.predict([config])[0])
        return {
            "latency_ms": latency,
            "statistic": self.table.statistic,
            "target": self.target,
            "lut": str(self.path),
            "batch": self.table.batch,
            "per_image_ms": latency / self.table.batch,
            "deployment": self.table.deployment,
            "space": self.space.name,
            "source": f"predicted: {self.regressor.model} model over the LUT {self.path} measured on target {self.target} "
                      f"({self.table.precision}, batch {self.table.batch})",
            "block_sum_ms": float(self.block_sum([config])[0]),
            "cv_mape": chosen.get("mape"),
            "flops_m": self.space.flops(config),
            "params_m": self.space.params(config),
            "config": config,
            "energy": self._explain_energy(config) if self.table.has_energy and not self.energy else None,
        }

    def _explain_energy(self, config: dict) -> dict:
        energy = self.energy_model()
        return {"energy_mj": float(energy.predict([config])[0]),
                "source": f"predicted: energy per inference (mJ, idle power subtracted), {energy.regressor.model} model over "
                          f"the LUT {self.path} measured on target {self.target}",
                "cv_mape": chosen_scores(self.table.meta.get("energy_report")).get("mape")}
