"""A fast profile without a source LUT: measure a designed subset of the blocks and predict the
rest from a block-cost model fitted on them; whole networks are measured as in a full profile and
stay the ground truth the LUT's predictor is fitted and judged on.

The block-cost model is a ridge regression of log latency on what a block key says (type, input
and output size, channels, kernel, expand ratio, stride, SE, activation) and the block's FLOPs and
params. The subset is spread over each stage group's FLOPs range; groups of one or two blocks (stem,
head pieces) are measured whole."""

from __future__ import annotations

import re

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ofahw.errors import UserError
from ofahw.fidelity import latency_fidelity
from ofahw.lut.campaign import Campaign, Item
from ofahw.lut.predictors import group_label
from ofahw.space import part_cost

_FIELD = re.compile(r"(\w+):(\d+(?:x\d+)*)")


def block_features(key: str, types: list[str], flops_m: float, params_m: float) -> np.ndarray:
    """A block's cost features: log sizes and FLOPs / params, kernel, stride, expand ratio, flags, type one-hot."""
    fields = {k: [int(v) for v in value.split("x")] for k, value in _FIELD.findall(key)}

    def field(name: str, default: int = 0) -> int:
        return fields.get(name, [default])[-1]  # of a size, its last dimension: channels

    inp, out = fields.get("input", [1]), fields.get("output", [1])
    in_ch = max(inp[-1], 1)
    if "expand" in fields:  # MBV3 keys give the expanded channels, ProxylessNAS keys the ratio
        ratio = field("expand") / in_ch if field("expand") >= in_ch else field("expand")
    else:
        ratio = field("mid", in_ch) / in_ch
    numeric = [np.log(np.prod(inp)), np.log(np.prod(out)), np.log(in_ch), np.log(max(out[-1], 1)), np.log1p(flops_m),
               np.log1p(params_m), field("kernel", 1), field("stride", 1), ratio, field("se"), field("hs"),
               field("idskip", field("skip"))]
    kind = key.split("-", 1)[0]
    return np.array(numeric + [float(kind == t) for t in types])


class BlockCostModel:
    """Ridge over :func:`block_features`, fitted on log latency; ``cv`` holds its K-fold figures."""

    def __init__(self, types: list[str]):
        self.types = types
        self.model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
        self.cv: dict = {}

    def features(self, rows: list[dict]) -> np.ndarray:
        return np.array([block_features(r["key"], self.types, r["flops_m"], r["params_m"]) for r in rows])

    def fit(self, rows: list[dict], seed: int = 0) -> BlockCostModel:
        X, y = self.features(rows), np.log(np.array([r["value_ms"] for r in rows]))
        oof = cross_val_predict(self.model, X, y, cv=KFold(n_splits=min(5, len(y)), shuffle=True, random_state=seed))
        self.cv = latency_fidelity(np.exp(y), np.exp(oof))
        self.model.fit(X, y)
        return self

    def predict(self, rows: list[dict]) -> np.ndarray:
        return np.exp(self.model.predict(self.features(rows)))


class FastCampaign(Campaign):
    """A campaign that measures ``block_share`` of the blocks (spread over each group's FLOPs) and
    ``samples`` networks, and predicts the other blocks with a :class:`BlockCostModel`."""

    def __init__(self, *args, block_share: float = 0.2, **kwargs):
        super().__init__(*args, **kwargs)
        if not 0 < block_share <= 1:
            raise UserError(f"the share of blocks a fast profile measures must be in (0, 1], got {block_share}")
        self.block_share = block_share
        self.cost_model: BlockCostModel | None = None
        self.predicted_blocks = 0

    def plan(self) -> list[Item]:
        items = super().plan()
        blocks = [i for i in items if i.kind == "block"]
        groups: dict[str, list[Item]] = {}
        for item in blocks:
            groups.setdefault(group_label(item.key), []).append(item)
        chosen = set()
        for members in groups.values():
            members = sorted(members, key=lambda i: part_cost(i.part)[0])
            n = len(members) if len(members) <= 2 else max(2, int(round(self.block_share * len(members))))
            chosen.update(members[j].key for j in np.unique(np.linspace(0, len(members) - 1, n).round().astype(int)))
        self._all_blocks = blocks
        return [i for i in items if i.kind == "network" or i.key in chosen]

    def _complete_rows(self, rows: list[dict]) -> list[dict]:
        measured = [r for r in rows if r["kind"] == "block"]  # a campaign completes measured rows only
        have = {r["key"] for r in measured}
        missing = [i for i in self._all_blocks if i.key not in have]
        types = sorted({r["key"].split("-", 1)[0] for r in measured} | {i.key.split("-", 1)[0] for i in missing})
        self.cost_model = BlockCostModel(types).fit(measured, self.seed)
        stat = self.target.protocol.statistic
        costs = [np.array(part_cost(i.part)) / 1e6 for i in missing]
        shells = [{"key": i.key, "flops_m": float(c[0]), "params_m": float(c[1])} for i, c in zip(missing, costs, strict=True)]
        predicted = self.cost_model.predict(shells) if shells else []
        self.predicted_blocks = len(shells)
        derived = [{**{k: None for k in measured[0]}, "kind": "block", "key": i.key, "resolution": i.resolution,
                    "flops_m": s["flops_m"], "params_m": s["params_m"], "statistic": stat, "value_ms": float(v),
                    f"{stat}_ms": float(v), "settled": True, "rounds": 0,
                    "source": f"predicted: block-cost model (ridge on the block's shape, FLOPs, params) fitted on "
                              f"{len(measured)} blocks measured on target {self.target.name}"}
                   for i, s, v in zip(missing, shells, predicted, strict=True)]
        return rows + derived

    def _extra_meta(self, rows: list[dict]) -> dict:
        measured = [r for r in rows if r["kind"] == "block" and r["rounds"]]
        networks = [r for r in rows if r["kind"] == "network"]
        return {"fast": {"measured_blocks": len(measured), "predicted_blocks": self.predicted_blocks,
                         "block_share": self.block_share, "block_cost_model_cv": self.cost_model.cv,
                         "measured_networks": len(networks),
                         "device_s": {"timed": sum(r["timed_s"] or 0 for r in measured + networks),
                                      "wall": sum(r["wall_s"] or 0 for r in measured + networks)}}}
