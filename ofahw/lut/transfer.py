"""Profile a new device from the LUTs you already have: measure a small designed set of whole
subnets on it, fit how the source LUTs' blocks map onto it, and write an ordinary LUT.

With probe blocks measured, the mapping is one of the probed ones (below); without, one of the
scaled ones: ``scaled`` (every block ``a * source + c``: one speed ratio and one per-block overhead),
``scaled-per-kernel`` (``w_g * source + c`` per depthwise kernel size, other parts per type) or
``scaled-per-kernel-activation`` (per kernel size and activation), non-negative; a group that
follows the resolution alone (stem, head) keeps the common multiplier. Kernel size, not stage, is what
the speed ratio between two runtimes follows (in this machine's LUTs, onnxruntime with basic graph
optimisation ran 7x7 depthwise blocks 3-10x slower than with all optimisations, 3x3 ones 1.6-3x).
Either way, the one chosen is the simplest whose cross-validated error on the new device's own
measurements is within one standard error of the lowest, per source.

Probed: the smallest and the largest block (FLOPs plus input elements) of each probe group (a part's
kind, channels, kernel, stride and flags; its size and expansion left out) are measured on the new
device too, and every block of the group takes a value interpolated between theirs at its size
(log-log), times one gain fitted on the networks: ``probed`` the source's block at the interpolated
speed ratio, ``probe-interpolated`` the interpolated latency (as ``--fast``; the source's block
left out), ``probed-blend`` their geometric mean. In this machine's LUTs the log of the ratio between
two runtimes had a standard deviation of 0.04-0.09 within such groups and of 0.13-0.57 between them,
more structure than a few whole networks can separate; and within a group it follows the size: one
probe per group (its median block) mapped the other blocks with a mean error of 6.3-16.0%, the two
ends interpolated with 4.0-6.6% (OpenVINO 13.1% -> 4.2%). What a source's block departs from its
group's trend mostly did not carry over to another runtime: the interpolated latency erred on the
blocks left out by 3.7-4.8%, the interpolated ratio by 4.7-6.5% (six ordered pairs of this machine's
full profiles).

The LUT's block rows are the source's blocks mapped so (a probe block: its measurement); its network
rows are the new measurements, and its predictor is fitted on them as for any LUT (so reprofile,
search and predict work unchanged), but for a probed mapping: there it is the calibrated sum alone,
since a per-group refit on the same few networks would overrule the probes with a fit of noise (on
this machine's five targets at 5-30 networks the grouped predictor ranked fresh subnets worse in 17
of 20 cases: cpu-2threads τ 0.30-0.46 against 0.65).
A rank check after the first samples says how good a proxy each source is; a poor one is reported,
and more samples follow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import KFold

from ofahw.errors import LutError, UserError
from ofahw.fidelity import latency_fidelity
from ofahw.lut.campaign import Campaign, Item, ProfileResult
from ofahw.lut.predictors import PartFeatures, stored_predictor
from ofahw.lut.probes import interpolate_in_groups, probe_blocks, probe_size
from ofahw.lut.table import LatencyTable
from ofahw.measure import Protocol

_KERNEL = re.compile(r"-kernel:(\d+)")
_HSWISH = re.compile(r"-hs:(\d)")


def kernel_label(key: str) -> str:
    """A block by its depthwise kernel size (``expanded_conv:k7``); other parts by their type (``Conv_1``)."""
    kind, match = key.split("-", 1)[0], _KERNEL.search(key)
    return f"{kind}:k{match.group(1)}" if match else kind


def kernel_activation_label(key: str) -> str:
    """:func:`kernel_label` and the block's activation (``expanded_conv:k7:hs1``: h-swish)."""
    match = _HSWISH.search(key)
    return kernel_label(key) + (f":hs{match.group(1)}" if match else "")


def each_block(key: str) -> str:
    """Every block its own group: a probed mapping gives each its own value from the probes."""
    return key


# The probed mappings by the weight (in log terms) of the source's own block beside the probes' interpolated
# latency, least first: whatever a source's block adds to its group's trend is taken only as far as it helps.
PROBED = {"probe-interpolated": 0.0, "probed-blend": 0.5, "probed": 1.0}
PROBED_BASIS = {  # what each gives a block, as its LUT row says
    "probe-interpolated": "the latency of its probe group's smallest and largest block interpolated at its size (the "
                          "source's block only its unit)",
    "probed-blend": "the geometric mean of the source's block at its probe group's speed ratio and of the group's "
                    "latency, both interpolated at its size between the group's smallest and largest block",
    "probed": "the speed ratio of its probe group's smallest and largest block interpolated at its size"}
SCALED = {"scaled": kernel_label, "scaled-per-kernel": kernel_label, "scaled-per-kernel-activation": kernel_activation_label}
GROUPINGS = {**dict.fromkeys(PROBED, each_block), **SCALED}
MAPPINGS = tuple(GROUPINGS)  # simplest first among each kind; "scaled" has one multiplier, its grouping only names the
# groups it is written for
GOOD_PROXY_TAU = 0.9  # rank agreement (Kendall) below which a source is reported as a poor proxy
FIRST_LOOK = 10  # samples measured before the proxy check
REPEATS = 10  # shufflings of the mappings' cross-validation
# Rounds of each probe block. Measured here (runs/offline/proberounds.py, in one process: three
# one-round and two three-round measurements of the 70 probes on openvino-int8, cpu-int8, cpu-basic),
# the held-out ranking the probes gave agreed within 0.009 Kendall τ either way, at a third of the time.
PROBE_ROUNDS = 1
MAPPING_RULE = ("the simplest mapping (order: " + ", ".join(PROBED) + " when probe blocks were measured, else "
                + ", ".join(SCALED) + ") whose CV MAPE is within one standard error (over the networks) of the lowest")
_UNTIL = re.compile(r"^\s*mape\s*<=\s*([0-9.]+)\s*%\s*$")


def parse_until(text: str | None) -> float | None:
    """``'mape<=3%'`` → 0.03."""
    if text is None:
        return None
    match = _UNTIL.match(text)
    if not match or not 0 < float(match.group(1)) < 100:
        raise UserError(f"--until must look like 'mape<=3%', got {text!r}")
    return float(match.group(1)) / 100


@dataclass(frozen=True)
class Mapping:
    """How one source's blocks map onto the new device, with its cross-validated figures."""

    source: str
    model: str
    group_scale: dict[str, float]  # group (of the model's grouping; probed: block) -> multiplier of the source's latency
    overhead_ms: float  # added to every block
    intercept_ms: float
    cv: dict
    gain: float = 1.0  # of a whole network's mapped block sum (probed: the blocks keep what the probes give them)

    def scale_of(self, key: str) -> float:
        return self.group_scale[GROUPINGS[self.model](key)]

    def block_value(self, key: str, source_ms: float) -> float:
        return max(self.scale_of(key) * source_ms + self.overhead_ms, 1e-6)

    def predict(self, source: LatencyTable, space, configs: list[dict]) -> np.ndarray:
        """Whole-network latency (ms) on the new device the mapping itself gives: the mapped source
        blocks summed, times its gain, plus its intercept."""
        X = PartFeatures(source, space, labels=list(self.group_scale), grouping=GROUPINGS[self.model])(configs)
        return _predict(X, (self.gain * np.array(list(self.group_scale.values())), self.gain * self.overhead_ms, self.intercept_ms))


def _fit(features: np.ndarray, y: np.ndarray, model: str, resolution: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(multiplier per group column, overhead per part, intercept) of ``model`` fitted to ``y`` of
    networks at ``resolution``, non-negative and weighted by ``1 / y^2`` (relative error).

    The grouped mappings free only the groups whose latency varies among the measured networks of
    one resolution: a group that follows the resolution alone (the stem, the head, the pooling) is,
    with the others like it and the intercept, one of several columns that trade against each other
    without bound, so it keeps the common multiplier of ``scaled``. Probed features come already
    scaled by what the probes give each block: one common multiplier, no per-part overhead (a probe
    block keeps its measurement)."""
    sums, count, weight = features[:, :-1], features[:, -1:], 1.0 / np.square(y)
    if model in PROBED:
        common = LinearRegression(positive=True).fit(sums.sum(axis=1, keepdims=True), y, sample_weight=weight)
        return np.full(sums.shape[1], common.coef_[0]), 0.0, float(common.intercept_)
    common = LinearRegression(positive=True).fit(np.hstack([sums.sum(axis=1, keepdims=True), count]), y, sample_weight=weight)
    scale = np.full(sums.shape[1], common.coef_[0])
    if model == "scaled":
        return scale, float(common.coef_[1]), float(common.intercept_)
    tolerance = 1e-9 * (1.0 + np.abs(sums).max(axis=0))
    varying = np.any([np.ptp(sums[resolution == r], axis=0) > tolerance for r in np.unique(resolution)], axis=0)
    fixed = sums[:, ~varying] @ scale[~varying]
    free = LinearRegression(positive=True).fit(np.hstack([sums[:, varying], count]), y - fixed, sample_weight=weight)
    scale[varying] = free.coef_[:-1]
    return scale, float(free.coef_[-1]), float(free.intercept_)


def _predict(features: np.ndarray, fit: tuple[np.ndarray, float, float]) -> np.ndarray:
    scale, overhead, intercept = fit
    return intercept + features[:, :-1] @ scale + overhead * features[:, -1]


def probe_scales(source: LatencyTable, space, probes: list[dict]) -> dict[str, dict[str, float]]:
    """Probed mapping -> block -> multiplier of ``source``'s latency, for every block of ``source`` whose
    probe group was probed, from the probe blocks' LUT rows ``probes``. Two values are interpolated
    in log size between a group's probes (:func:`~ofahw.lut.probes.interpolate_in_groups`, held flat
    beyond them; a group of one probe, its value): the speed ratio (new device / source) and the
    latency itself. A mapping of source weight w (:data:`PROBED`) gives a block, in log terms, w times
    the source's block at the interpolated ratio plus 1 - w times the interpolated latency: at 1 the
    source's block keeps all its departure from its group's trend, at 0 none."""
    blocks = source.blocks
    sizes = {k: probe_size(part) for k, (_, part) in space.block_parts(source.resolutions).items() if k in blocks}
    measured = [(r["key"], r["value_ms"]) for r in probes if r["key"] in blocks]
    ratio = interpolate_in_groups(sizes, ((k, v / blocks[k]["value_ms"]) for k, v in measured))
    level = interpolate_in_groups(sizes, measured)
    return {model: {k: ratio[k] ** w * (level[k] / blocks[k]["value_ms"]) ** (1 - w) for k in ratio}
            for model, w in PROBED.items()}


def fit_mapping(source: LatencyTable, source_path: str, space, configs: list[dict], y: np.ndarray, seed: int = 0,
                probes: dict[str, dict[str, float]] | None = None) -> Mapping:
    """The mapping of ``source`` onto the measurements ``y`` (ms) of ``configs`` (:data:`MAPPING_RULE`),
    with every candidate's cross-validated figures: out-of-fold predictions of K-fold splits
    (K = min(5, n)), averaged over ``REPEATS`` shufflings, since with ten networks one split's MAPEs of
    two mappings often differ by less than the split's own chance. ``probes``: each probed mapping's
    multiplier of every block (:func:`probe_scales`); with one for every block, the candidates are
    the probed mappings alone.

    Why the scaled mappings are no candidates beside probes: the designed networks take the
    resolutions in turns, so a few of them test little but the resolution trend, and a mapping with
    more fitted terms scores well on them while ranking fresh subnets worse. On this machine's five
    transfer targets at 5, 10 and 20 networks, ``probed`` ranked 50 fresh subnets best or within 0.002
    of the best (Kendall τ) in 15 of 15 cases, while the CV (simplest within one standard error) took
    another mapping in 2: OpenVINO at 5 networks ``scaled`` (CV MAPE 0.7% against 2.6%; τ 0.814
    against 0.894), OpenVINO int8 at 10 ``scaled-per-kernel`` (τ 0.830 against 0.847).

    Why the probed mappings weigh the source's block: between two runtimes a block's departure from
    its group's trend need not carry over. On the six ordered pairs of this machine's full profiles
    (onnxruntime fp32, int8, OpenVINO; the probes' values taken from the target's profile, held-out
    subnets against the faster of two processes) the source weights 0 / 0.5 / 1 ranked 50 fresh
    subnets at τ 0.917-0.930 / 0.838-0.927 / 0.740-0.918: weight 0 best or within 0.003 of the best
    in all six, weight 1 worse by 0.010-0.177. By the rule above, the CV on 10, 20 or 30 of the
    target profile's networks (ten draws each) took weight 0 in 175 of 180 cases and 0.5 in the
    others, ranking within 0.003 of the best weight in every case."""
    resolution = np.array([c["r"] for c in configs])
    features = {g: PartFeatures(source, space, grouping=g) for g in set(GROUPINGS.values())}
    blocks = features[each_block].labels
    scales = {m: np.array([s[b] for b in blocks]) for m, s in (probes or {}).items() if all(b in s for b in blocks)}
    models = list(scales) or list(SCALED)
    matrices = {g: features[g](configs) for g in {GROUPINGS[m] for m in models}}  # mappings share groupings

    def matrix(model: str) -> np.ndarray:
        return matrices[each_block] * np.append(scales[model], 1.0) if model in scales else matrices[GROUPINGS[model]]

    scores = {}
    for model in models:
        X, repeats, error = matrix(model), [], np.zeros(len(y))
        for r in range(REPEATS):
            oof = np.empty_like(y)
            for train, test in KFold(n_splits=min(5, len(y)), shuffle=True, random_state=seed + r).split(X):
                oof[test] = _predict(X[test], _fit(X[train], y[train], model, resolution[train]))
            repeats.append(latency_fidelity(y, oof))
            error += np.abs(oof / y - 1) / REPEATS
        scores[model] = {k: v if k == "n" else float(np.mean([f[k] for f in repeats])) for k, v in repeats[0].items()}
        scores[model]["mape_se"] = float(error.std(ddof=1) / np.sqrt(len(y))) if len(y) > 1 else 0.0
    lowest = min(models, key=lambda m: scores[m]["mape"])
    best = next(m for m in models if scores[m]["mape"] <= scores[lowest]["mape"] + scores[lowest]["mape_se"])
    scale, overhead, intercept = _fit(matrix(best), y, best, resolution)
    gain = 1.0
    if best in scales:
        scale, gain = scales[best], float(scale[0])
    labels = features[GROUPINGS[best]].labels
    return Mapping(source_path, best, dict(zip(labels, map(float, scale), strict=True)), overhead, intercept,
                   {"chosen": best, "candidates": scores, "repeats": REPEATS, "rule": MAPPING_RULE}, gain)


def design(space, sources: list[tuple[str, LatencyTable]], n: int, resolutions: list[int], seed: int) -> list[dict]:
    """``n`` subnets in an order whose every prefix is spread over the resolutions, over the sources'
    predicted latency range at each resolution and over the choices. The resolutions take turns (in a
    spread order); the k-th subnet's latency rank among its resolution's candidates is the radical
    inverse of k in a base prime to the number of resolutions, so that no resolution keeps the low or
    the high end; that rank's stratum (one of as many equal-count strata as the resolution's share of
    ``n``) gives the subnet farthest in genes from those already chosen. Deterministic for ``seed``.

    The turns matter: strata of the whole latency range put half of a 30-subnet set at the smallest
    resolution, and the speed ratio between two runtimes can follow the input size (OpenVINO int8 on
    this machine: ``probed`` erred on fresh subnets by a log standard deviation of 0.19 at 224 and
    0.09 at 160, yet fitted a set crowded at 160 within 5%)."""
    resolutions = sorted(resolutions)
    narrowed = space.with_resolutions(resolutions)
    pool = space.sample_stratified(max(10 * n, 200), np.random.default_rng(seed), resolutions)
    X = np.array([narrowed.encode(c) for c in pool])
    predicted = np.mean([np.argsort(np.argsort(_source_prediction(table, space, pool))) for _, table in sources], axis=0)
    order, at = np.argsort(predicted, kind="stable"), np.array([c["r"] for c in pool])
    by_resolution = [m for m in (order[at[order] == r] for r in resolutions) if len(m)]  # each by predicted latency
    turns = [by_resolution[i] for i in _spread_order(len(by_resolution))]
    share = -(-n // len(turns))
    base = next(p for p in (2, 3, 5, 7, 11, 13) if len(turns) % p)
    active = narrowed.active_mask(X)
    free = np.ones(len(pool), dtype=bool)
    chosen: list[int] = []
    for k in range(n):  # the pool holds at least 10 n: never spent
        members = turns[k % len(turns)]
        strata = np.array_split(members, min(share, len(members)))
        stratum = strata[min(int(_radical_inverse(k, base) * len(strata)), len(strata) - 1)]
        candidates = next(c for c in (stratum[free[stratum]], members[free[members]], np.flatnonzero(free)) if len(c))
        if chosen:
            distance = ((X[candidates][:, None, :] != X[chosen][None, :, :]) & active[candidates][:, None, :]).sum(axis=2).min(axis=1)
            pick = candidates[int(np.argmax(distance))]
        else:
            pick = candidates[len(candidates) // 2]
        chosen.append(int(pick))
        free[pick] = False
    return [pool[i] for i in chosen]


def _radical_inverse(i: int, base: int) -> float:
    """``i``'s digits in ``base`` mirrored behind the point: 1, 2, 3 in base 2 -> 0.5, 0.25, 0.75."""
    out, scale = 0.0, 1.0 / base
    while i:
        i, digit = divmod(i, base)
        out, scale = out + digit * scale, scale / base
    return out


def _spread_order(n: int) -> list[int]:
    """0 .. n-1 in an order whose prefixes spread over the range (bit-reversed fractions)."""
    seen, out = set(), []
    for i in range(4 * n):
        s = min(int(_radical_inverse(i, 2) * n), n - 1)
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out + [s for s in range(n) if s not in seen]


class TransferCampaign(Campaign):
    """A campaign that measures only the designed whole subnets on the new target and takes its
    blocks from the best-fitting source mapping. ``samples`` bounds how many are measured.

    With ``probe`` it also measures the ends of each probe group (:func:`probe_blocks`; 70 blocks
    in OFA-MobileNetV3), in the first step and in :data:`PROBE_ROUNDS` round, which makes the mapping
    a probed one; without, whole networks only (where every item is costly, such as a TensorRT engine
    build per block).

    It runs in steps of ``step`` samples: after the first, each source's rank agreement is reported
    (a poor proxy is said, and the steps go on to ``samples``); with ``until`` (a MAPE such as 0.03)
    it stops as soon as the LUT's cross-validated MAPE reaches it, else at ``samples``."""

    def __init__(self, space, target, out, sources: list[str | Path], samples: int = 30, resolutions=None,
                 until: float | None = None, step: int = FIRST_LOOK, on_step=None, probe: bool = True, **kwargs):
        tables = [(str(p), LatencyTable.read(p)) for p in sources]
        if not tables:
            raise UserError("--from names no source LUT")
        for path, table in tables:
            if table.space_name != space.name:
                raise LutError(f"source LUT {path} is of space {table.space_name}, not {space.name}")
            if table.predictor is None:
                raise LutError(f"source LUT {path} has no fitted predictor")
        shared = sorted(set.intersection(*(set(t.resolutions) for _, t in tables)))
        resolutions = list(resolutions or shared)
        missing = sorted(set(resolutions) - set(shared))
        if missing:
            raise LutError(f"resolutions {missing} are not profiled in every source LUT (shared: {shared})")
        self.sources = tables
        super().__init__(space, target, out, resolutions, samples, **kwargs)
        self.bound = samples  # the designed sequence's length; ``samples`` is how much of it a step measures
        self.until, self.step, self.on_step = until, step, on_step  # on_step(result) after each step (benchmarks)
        self.probe = probe
        self._designed: list[dict] | None = None
        for path, table in tables:
            if table.batch != self.batch:
                raise LutError(f"source LUT {path} was measured at batch {table.batch}, not {self.batch}: a batch size "
                               "changes the landscape; transfer from a LUT of the same batch size")
        self.mapping: Mapping | None = None
        self.proxies: dict[str, float] = {}

    def run(self) -> ProfileResult:
        with self.writing():  # held across the steps
            return self._run_steps()

    def _run_steps(self) -> ProfileResult:
        steps, poor, result, until = [], [], None, self.until
        totals = {"measured": 0, "reused_rounds": 0, "wall_s": 0.0, "timed_s": 0.0}
        for n in range(min(self.step, self.bound), self.bound + self.step, self.step):
            self.samples = min(n, self.bound)
            result = self._run()
            self.fresh = False  # a fresh start replaces what was there before the first step, not the steps' own work
            totals = {k: v + getattr(result, k) for k, v in totals.items()}
            mape = result.table.report["candidates"][result.table.report["chosen"]]["mape"]
            steps.append({"samples": self.samples, "cv_mape": mape})
            if self.on_step is not None:
                self.on_step(result)
            if len(steps) == 1:
                poor = [p for p, tau in self.proxies.items() if not tau >= GOOD_PROXY_TAU]
                for path in poor:
                    self.log(f"WARNING: source {path} is a poor proxy for target {self.target.name}: Kendall tau "
                             f"{self.proxies[path]:.3f} < {GOOD_PROXY_TAU} on the first {self.samples} measurements")
                if poor and len(poor) == len(self.sources):
                    self.log(f"no source is a good proxy: measuring all {self.bound} samples; if the report stays poor, "
                             "profile the target fully (ofahw profile without --from)")
                    until = None  # the goal is reported, not trusted to stop early
            self.log(f"transfer: {self.samples} networks measured on target {self.target.name}; cross-validated MAPE "
                     f"{mape:.2%}" + (f" (goal {self.until:.1%})" if self.until else ""))
            if (until is not None and mape <= until) or self.samples >= self.bound:
                break
        for k, v in totals.items():
            setattr(result, k, v)
        result.reused = len(result.table.rows) - result.measured
        done = result.table.meta["transfer"]  # this run's mapping, or the one a finished run wrote
        result.transfer = {"steps": steps, "poor_proxies": poor, "proxy_kendall_tau": done["proxy_kendall_tau"],
                           "reached": None if self.until is None else steps[-1]["cv_mape"] <= self.until,
                           "mapping": done["mapping"], "source": done["chosen_source"]}
        return result

    def plan(self) -> list[Item]:
        if self._designed is None:
            self._designed = design(self.space, self.sources, self.bound, self.resolutions, self.seed)
        b = self.batch
        probes = probe_blocks(self.space, self.resolutions) if self.probe else {}
        return [Item("block", key, r, (b, *part.input_shape), part=part) for key, (r, part) in probes.items()] + [
            Item("network", self.space.config_hash(c), c["r"], (b, 3, c["r"], c["r"]), config=c)
            for c in self._designed[: self.samples]]

    def _protocol(self, item: Item) -> Protocol:
        protocol = super()._protocol(item)
        return replace(protocol, rounds=PROBE_ROUNDS) if item.kind == "block" else protocol

    def _complete_rows(self, rows: list[dict]) -> list[dict]:
        networks = [r for r in rows if r["kind"] == "network"]
        probes = [r for r in rows if r["kind"] == "block"]  # a campaign completes measured rows only
        settled = [r for r in networks if r["settled"]] if sum(r["settled"] for r in networks) >= 5 else networks
        configs, y = [r["config"] for r in settled], np.array([r["value_ms"] for r in settled])
        self.proxies = {path: latency_fidelity(y, _source_prediction(table, self.space, configs))["kendall_tau"]
                        for path, table in self.sources}
        mappings = [fit_mapping(table, path, self.space, configs, y, self.seed, probe_scales(table, self.space, probes) if probes else None)
                    for path, table in self.sources]
        self.mapping = min(mappings, key=lambda m: m.cv["candidates"][m.model]["mape"])
        source = dict(self.sources)[self.mapping.source]
        measured = {r["key"] for r in probes}
        wanted = set(self.space.block_parts(self.resolutions)) - measured
        blocks = [self._derived_block(row["key"], row["resolution"], row["flops_m"], row["params_m"],
                                      self.mapping.block_value(row["key"], row["value_ms"]),
                                      f"transferred: {self.mapping.scale_of(row['key']):.4g} x block of {self.mapping.source} + "
                                      f"{self.mapping.overhead_ms:.4g} ms ({self.mapping.model}, "
                                      f"{self._basis(len(y), len(probes))} on target {self.target.name})")
                  for row in source.blocks.values() if row["key"] in wanted]
        return networks + probes + blocks

    def _basis(self, networks: int, probes: int) -> str:
        if self.mapping.model in PROBED:
            return (f"{PROBED_BASIS[self.mapping.model]}, of {probes} probe blocks measured, its level set by {networks} "
                    "networks measured")
        return f"fitted on {networks} networks measured"

    def _predictor_models(self) -> dict:
        if self.mapping.model not in PROBED:
            return {}
        return {"models": ("calibrated-sum",),
                "why": "a probed transfer: the blocks carry what the probes measured, which a per-group refit on "
                       "the same few networks would overrule"}

    def _extra_meta(self, rows: list[dict]) -> dict:
        networks = [r for r in rows if r["kind"] == "network"]
        measured = [r for r in rows if r["rounds"]]
        m = self.mapping
        return {"transfer": {
            "sources": [p for p, _ in self.sources], "chosen_source": m.source, "mapping": m.model,
            "group_scale": m.group_scale, "overhead_ms": m.overhead_ms, "intercept_ms": m.intercept_ms, "gain": m.gain,
            "mapping_cv": m.cv,
            "proxy_kendall_tau": self.proxies, "good_proxy_tau": GOOD_PROXY_TAU,
            "measured_networks": len(networks), "measured_blocks": len(measured) - len(networks),
            "device_s": {"timed": sum(r["timed_s"] or 0 for r in measured), "wall": sum(r["wall_s"] or 0 for r in measured)},
            "note": "block rows are the chosen source's blocks mapped onto this target, but for the probe blocks, measured "
                    "on it; network rows were measured on it"}}


def _source_prediction(table: LatencyTable, space, configs: list[dict]) -> np.ndarray:
    features, regressor = stored_predictor(table, space, table.predictor)
    return regressor.predict(features(configs))
