"""A profiling campaign: every block of the space at the asked resolutions plus stratified
whole-network samples, measured on one target, resumable, then turned into a LUT + predictor."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ofahw._io import check_writable, writer_lock
from ofahw.errors import Incomplete, LutError, UserError
from ofahw.export import (
    Artifact,
    OnnxCache,
    export_ahead,
    network_artifact,
    network_input_shape,
    network_job,
    part_artifact,
    part_job,
    prune_quantized,
)
from ofahw.lut.predictors import fit_predictor
from ofahw.lut.table import COLUMNS, LatencyTable, json_path
from ofahw.measure import Measurement, Protocol, Target, keep_rounds
from ofahw.space import Part, Space, part_cost

MIN_SAMPLES = 5
N_SENTINELS = 5


@dataclass(frozen=True)
class Item:
    kind: str  # "block" or "network"
    key: str  # part key, or the subnet's canonical hash
    resolution: int
    input_shape: tuple[int, ...]
    config: dict | None = None
    part: Part | None = None


@dataclass
class ProfileResult:
    table: LatencyTable
    path: Path
    measured: int  # items measured in this run
    reused: int  # items taken whole from the existing LUT
    reused_rounds: int = 0  # rounds taken from the journal of an interrupted run
    unsettled: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    timed_s: float = 0.0
    transfer: dict | None = None  # a transfer's steps, proxy check and mapping


def _done(records: list[dict]) -> int:
    """The rounds of an item finished: its journal records but those measured again later."""
    return sum(not r.get("retried") for r in records)


def _open_tries(records: list[dict]) -> list[int]:
    """The next try of each round an interrupted run left to be measured again (it did not settle): a
    resume goes on from there, so a round never gets more tries than the protocol's retries. Records
    of one item's rounds interleave, but every try after the first continues one retried try."""
    tries = Counter(r.get("attempts", 1) for r in records)
    retried = Counter(r.get("attempts", 1) for r in records if r.get("retried"))
    return sorted((a + 1 for a, n in retried.items() for _ in range(n - tries[a + 1])), reverse=True)


def _by_item(sequence: list[tuple[tuple[str, str], dict]]) -> dict[tuple[str, str], list[dict]]:
    """The journal records of ``sequence`` by (kind, key), each item's in the order measured."""
    rounds: dict[tuple[str, str], list[dict]] = {}
    for key, record in sequence:
        rounds.setdefault(key, []).append(record)
    return rounds


def journal_path(csv_path: Path) -> Path:
    return csv_path.with_name(csv_path.name + ".journal")


class Campaign:
    """Profiles ``space`` on ``target`` into ``out`` (a .csv path).

    Finished measurements go to an append-only journal beside the LUT as they happen, so an
    interrupted run loses at most the item in flight, and a rerun measures only what is missing.
    The LUT itself is written once at the end, atomically.
    """

    def __init__(self, space: Space, target: Target, out: str | Path, resolutions=None, samples: int = 100,
                 seed: int = 0, budget_s: float | None = None, cache: OnnxCache | None = None,
                 fresh: bool = False, progress: bool = True, log: Callable[[str], None] = print, position: int = 0,
                 batch: int = 1, energy: dict | None = None):
        self.space, self.target = space, target
        self.energy = energy  # the power sensor's settings (a target file's energy section) where energy is measured too
        if not isinstance(batch, int) or batch < 1:
            raise UserError(f"batch size must be a positive integer, got {batch!r}")
        self.batch = batch
        self.out = Path(out)
        if self.out.suffix != ".csv":
            raise UserError(f"--out must be a .csv path (got {out})")
        check_writable(self.out)
        check_writable(json_path(self.out))
        self.resolutions = list(space.validate_resolutions(resolutions))
        if samples < MIN_SAMPLES:
            raise UserError(f"--samples must be at least {MIN_SAMPLES} (whole networks are needed to fit and check the predictor)")
        self.samples, self.seed, self.budget_s = samples, seed, budget_s
        self.cache = cache or OnnxCache()
        self.fresh, self.progress, self.log, self.position = fresh, progress, log, position
        self.journal = journal_path(self.out)

    # -- what identifies comparable measurements ---------------------------------------------
    def _header(self) -> dict:
        return {"space": self.space.name, "target": self.target.fingerprint(), "statistic": self.target.protocol.statistic,
                "round_rule": self.target.protocol.round_rule, "batch": self.batch, "energy": self.energy is not None}

    def _check_compatible(self, header: dict, where: Path) -> None:
        header = {"batch": 1, "energy": False, "round_rule": "fastest", **header, "target": self.target.completed(header.get("target"))}
        mine = self._header()
        diff = [k for k in mine if header.get(k) != mine[k]]
        if diff:
            raise LutError(
                f"{where} was profiled with other {', '.join(diff)} ({', '.join(json.dumps(header.get(k)) for k in diff)}); "
                "choose another --out, or pass --fresh to replace it"
            )

    def _previous(self) -> tuple[dict[tuple[str, str], dict], list[tuple[tuple[str, str], dict]], dict[tuple[str, str], dict]]:
        """Finished rows of an existing LUT by (kind, key); the rounds recorded in the journal as
        ((kind, key), record) in the order measured; and its energy measurements by (kind, key)."""
        rows: dict[tuple[str, str], dict] = {}
        sequence: list[tuple[tuple[str, str], dict]] = []
        energies: dict[tuple[str, str], dict] = {}
        if self.fresh:
            return rows, sequence, energies
        if self.out.exists():
            table = LatencyTable.read(self.out)
            self._check_compatible({"space": table.space_name, "statistic": table.meta.get("statistic"),
                                    "round_rule": table.round_rule, "target": table.target_fingerprint, "batch": table.batch,
                                    "energy": table.has_energy}, self.out)
            # derived rows (a transfer's or fast profile's blocks, never measured) are derived again, not taken as done
            rows.update({(r["kind"], r["key"]): r for r in table.rows if r["rounds"]})
        if self.journal.exists():
            lines = self.journal.read_text(encoding="utf-8").splitlines()
            try:
                header = json.loads(lines[0]) if lines else {}
            except json.JSONDecodeError:
                raise LutError(f"journal {self.journal} is damaged; delete it or pass --fresh") from None
            self._check_compatible(header, self.journal)
            for line in lines[1:]:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line torn by an interruption: that round is measured again
                if "energy" in record:
                    energies[(record["kind"], record["key"])] = record["energy"]
                else:
                    sequence.append(((record["kind"], record["key"]), record))
        return rows, sequence, energies

    # -- plan --------------------------------------------------------------------------------
    def plan(self) -> list[Item]:
        """Every block at every resolution, then ``samples`` stratified networks (seeded)."""
        b = self.batch
        items = [Item("block", key, r, (b, *part.input_shape), part=part)
                 for key, (r, part) in self.space.block_parts(self.resolutions).items()]
        rng = np.random.default_rng(self.seed)
        for config in self.space.sample_stratified(self.samples, rng, self.resolutions):
            items.append(Item("network", self.space.config_hash(config), config["r"], network_input_shape(config, b), config=config))
        return items

    def make_ahead(self) -> None:
        """Make the models of every item still to measure ahead of measuring (:meth:`_make_ahead`)."""
        rows = self._previous()[0]
        self._make_ahead([i for i in self.plan() if (i.kind, i.key) not in rows])

    def _make_ahead(self, items: list[Item]) -> None:
        """Export (and quantize, for an int8 target) the models of ``items`` that the caches lack, in
        one process per usable core, before any round starts (:func:`ofahw.export.export_ahead`)."""
        jobs = [self.target.export_job(part_job(i.part, self.batch) if i.kind == "block" else
                                       network_job(self.space, i.config, self.batch)) for i in items]
        made = export_ahead([j for j in jobs if j is not None], self.cache, progress=self.progress,
                            desc=f"export {self.target.name}", position=self.position)
        if made is not None:
            self.log(f"target {self.target.name}: {made.describe()}")

    def _artifact(self, item: Item) -> Artifact:
        if item.kind == "block":
            return part_artifact(item.part, self.cache, self.batch)
        return network_artifact(self.space, item.config, self.cache, self.batch)

    def _row(self, item: Item, records: list[dict], best: Measurement, energy: dict | None = None) -> dict:
        """One LUT row from every round measured of an item, retried ones too, and ``best``, the round
        the protocol's round rule keeps of them (:func:`ofahw.measure.keep_rounds`), with the spread of
        all (and its energy per inference, where measured). ``rounds`` counts the rounds asked for,
        ``attempts`` every round measured."""
        stat = self.target.protocol.statistic
        measurements = [Measurement.from_dict(r["m"]) for r in records]
        flops, params = (np.array(part_cost(item.part)) / 1e6) if item.kind == "block" else (
            self.space.flops(item.config), self.space.params(item.config))
        return {
            "kind": item.kind, "key": item.key, "resolution": item.resolution, "config": item.config,
            "flops_m": float(flops), "params_m": float(params), "statistic": stat, "value_ms": best.value(stat),
            **{f"{s}_ms": getattr(best, s) for s in ("min", "p10", "median", "mean", "std", "p90", "p99")},
            "n": best.n, "cov": best.cov, "rel_se": best.rel_se, "rounds": _done(records),
            "round_spread": best.round_spread, "settled": best.settled,
            "attempts": len(records), "warmup_runs": best.warmup_runs,
            "timed_s": sum(m.timed_s for m in measurements), "wall_s": sum(m.wall_s for m in measurements),
            "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "source": f"measured on target {self.target.name}",
            "energy_mj": energy["mj"] if energy else None, "energy_std_mj": energy["std_mj"] if energy else None,
        }

    def _derived_block(self, key: str, resolution: int, flops_m: float, params_m: float, value_ms: float, source: str) -> dict:
        """A block row not measured but derived (a transfer's or fast profile's): ``rounds`` 0, ``source``
        saying how, its value under the target's statistic."""
        stat = self.target.protocol.statistic
        return {**dict.fromkeys(COLUMNS), "kind": "block", "key": key, "resolution": resolution, "flops_m": flops_m,
                "params_m": params_m, "statistic": stat, "value_ms": value_ms, f"{stat}_ms": value_ms, "settled": True,
                "rounds": 0, "source": source}

    # -- run ---------------------------------------------------------------------------------
    def _protocol(self, item: Item) -> Protocol:
        return self.target.protocol.for_network() if item.kind == "network" else self.target.protocol

    def writing(self):
        """This campaign alone writes its LUT and journal while held (:func:`~ofahw._io.writer_lock`)."""
        return writer_lock(self.out, f"a campaign on target {self.target.name}")

    def run(self) -> ProfileResult:
        with self.writing():
            return self._run()

    def _run(self) -> ProfileResult:
        start = time.monotonic()
        rows, sequence, energies = self._previous()
        rounds = _by_item(sequence)
        todo = [i for i in self.plan() if (i.kind, i.key) not in rows]
        reused_rounds = sum(len(rounds.get((i.kind, i.key), [])) for i in todo)
        if not todo and self.out.exists() and not self.journal.exists():
            self.log(f"{self.out} already holds every item asked for; nothing to measure")
            return ProfileResult(LatencyTable.read(self.out), self.out, 0, len(rows))
        self._make_ahead(todo)
        # Round k of every item runs in the k-th part of the campaign, in random order, so an item's
        # rounds lie far apart in time and a slow drift of the machine biases no kind of item. A resumed
        # run draws other orders than the run before it: repeating them would put an item's rounds the
        # same time apart as every other item's, where a drift of the machine looks like the items' own.
        rng = np.random.default_rng(self.seed + 1 + len(sequence))
        queue: list[tuple[Item, int]] = []
        for k in range(max(self._protocol(i).rounds for i in todo) if todo else 0):
            pending = [i for i in todo if _done(rounds.get((i.kind, i.key), [])) <= k < self._protocol(i).rounds]
            for j in rng.permutation(len(pending)):
                records = rounds.get((pending[j].kind, pending[j].key), [])
                resumed = _open_tries(records)[k - _done(records):]
                queue.append((pending[j], resumed[0] if resumed else 1))
        self.log(f"profiling {self.space.name} on target {self.target.name} at batch {self.batch}: {len(todo)} items to measure "
                 f"({len(queue)} rounds; {reused_rounds} rounds reused from the journal), {len(rows)} already in the LUT "
                 f"(resolutions {self.resolutions})")
        if self.fresh or not self.journal.exists():
            self.journal.parent.mkdir(parents=True, exist_ok=True)
            self.journal.write_text(json.dumps(self._header()) + "\n", encoding="utf-8")
        timed = 0.0
        bar = _progress(len(queue), self.progress, f"profile {self.target.name}", self.position)
        with self.target, open(self.journal, "a", encoding="utf-8") as journal:
            device = self.target.metadata()
            if self.energy is not None:
                self.target.check_energy(self.energy)  # no sensor: said now, not after the latency rounds
            while queue:
                if self.budget_s is not None and time.monotonic() - start > self.budget_s:
                    bar.close()
                    raise BudgetExhausted(len(queue), self.journal)
                batch, queue = queue[: self.target.batch_size], queue[self.target.batch_size:]
                jobs = [(self._artifact(item), self._protocol(item)) for item, _ in batch]
                for (item, attempt), m in zip(batch, self.target.measure_batch(jobs), strict=True):
                    timed += m.timed_s
                    bar.update(1)
                    # a round that did not settle is kept (it may still be the fastest) and measured
                    # again later, when the machine may be quieter
                    retried = not m.settled and attempt <= self.target.protocol.retries
                    if retried:
                        queue.append((item, attempt + 1))
                        bar.total += 1
                    record = {"kind": item.kind, "key": item.key, "attempts": attempt, "retried": retried, "m": m.to_dict()}
                    journal.write(json.dumps(record) + "\n")
                    journal.flush()
                    os.fsync(journal.fileno())
                    sequence.append(((item.kind, item.key), record))
            bar.close()
            if self.energy is not None:
                self._measure_energy(todo, energies, journal)
            device = {**device, **self.target.where_measured()}
        rounds, protocol = _by_item(sequence), self.target.protocol
        # (kind, key): a slow spell slows a whole network far more than a block (ofahw.measure.kept)
        kept = keep_rounds([(key, Measurement.from_dict(r["m"])) for key, r in sequence], protocol.statistic, protocol.round_rule,
                           speed_group=lambda item: item[0])
        new_rows = [self._row(i, rounds[(i.kind, i.key)], kept[(i.kind, i.key)], energies.get((i.kind, i.key))) for i in todo]
        unsettled = [r["key"] for r in new_rows if not r["settled"]]
        wall = time.monotonic() - start
        table = self._finish(list(rows.values()) + new_rows, device, wall, timed, len(new_rows), reused_rounds)
        self.journal.unlink(missing_ok=True)
        self.cache.prune()
        if self.target.quantization() is not None:
            prune_quantized()
        return ProfileResult(table, self.out, len(new_rows), len(rows), reused_rounds, unsettled, wall, timed)

    def _measure_energy(self, todo: list[Item], energies: dict, journal) -> None:
        """Energy per inference of each item not yet measured, after the latency rounds (windows of
        back-to-back runs, see :meth:`Target.measure_energy`), each recorded in the journal."""
        pending = [i for i in todo if (i.kind, i.key) not in energies]
        bar = _progress(len(pending), self.progress, f"energy {self.target.name}", self.position)
        for item in pending:
            m = self.target.measure_energy(self._artifact(item), self.energy)
            record = {"kind": item.kind, "key": item.key, "energy": m.to_dict()}
            journal.write(json.dumps(record) + "\n")
            journal.flush()
            os.fsync(journal.fileno())
            energies[(item.kind, item.key)] = record["energy"]
            bar.update(1)
        bar.close()

    def _complete_rows(self, rows: list[dict]) -> list[dict]:
        """The LUT's rows from those measured (a transfer derives its blocks here)."""
        return rows

    def _extra_meta(self, rows: list[dict]) -> dict:
        """More for the LUT's metadata (a transfer says what it was transferred from)."""
        return {}

    def _predictor_models(self) -> dict:
        """The latency predictor's candidates, as ``fit_predictor``'s ``models`` and ``why`` (default: all)."""
        return {}

    def _finish(self, rows: list[dict], device: dict, wall_s: float, timed_s: float, measured: int,
                reused_rounds: int) -> LatencyTable:
        rows = sorted(self._complete_rows(rows), key=lambda r: (r["kind"], r["resolution"], r["key"]))
        networks = sorted((r for r in rows if r["kind"] == "network" and r["settled"]), key=lambda r: r["value_ms"])
        quantization = self.target.quantization()
        picks = np.unique(np.linspace(0, len(networks) - 1, N_SENTINELS).round().astype(int)) if networks else []
        meta = {
            "space": self.space.name,
            "resolutions": sorted({*self.resolutions, *(r["resolution"] for r in rows if r["kind"] == "network")}),
            "statistic": self.target.protocol.statistic,
            "target": {"name": self.target.name, "kind": self.target.kind, "source": self.target.source,
                       "fingerprint": self.target.fingerprint()},
            "batch": self.batch,
            "precision": self.target.precision,
            "quantization": quantization.describe() if quantization else None,
            "device": device,
            "protocol": self.target.protocol.to_dict(),
            "sentinels": [networks[i]["key"] for i in picks],
            "profiling": {"wall_s": wall_s, "timed_s": timed_s, "measured_items": measured, "reused_rounds": reused_rounds,
                          "overhead": wall_s / timed_s if timed_s else None,
                          "note": "this run only (not the rounds reused from an interrupted run's journal): "
                                  "wall time over time inside timed inference"},
            "created_by": "ofahw " + __import__("ofahw").__version__,
            **self._extra_meta(rows),
        }
        if self.energy is not None:
            meta["energy"] = {"sensor": dict(self.energy), "unit": "mJ per inference (per batch), idle power subtracted",
                              "method": "windows of back-to-back runs lasting at least window_s and three sensor periods, "
                                        "repeated until the median's relative standard error is at most 3%"}
        table = LatencyTable(rows, meta)
        table.add_version({"version": 1, "event": "profiled", "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")},
                          history=[])
        table.set_predictor(fit_predictor(table, self.space, seed=self.seed, **self._predictor_models()))
        if self.energy is not None:
            table.set_energy_predictor(fit_predictor(table, self.space, seed=self.seed, column="energy_mj"))
        table.write(self.out)
        return table


class BudgetExhausted(Incomplete):
    def __init__(self, remaining: int, journal: Path):
        super().__init__(f"time budget ran out with {remaining} items left; progress is saved in {journal}; "
                         "rerun the same command to resume")


def _progress(total: int, enabled: bool, desc: str, position: int = 0):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="round", disable=not enabled, dynamic_ncols=True, leave=False, position=position)
