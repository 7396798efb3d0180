"""A target's lookup table: ``lut/NAME.csv`` (one row per measured item) + ``lut/NAME.json``."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ofahw._io import atomic_write_text, strict_json
from ofahw.errors import LutError

FORMAT = "ofahw-lut"
FORMAT_VERSION = 1
COLUMNS = [
    "kind", "key", "resolution", "config", "flops_m", "params_m", "statistic", "value_ms",
    "min_ms", "p10_ms", "median_ms", "mean_ms", "std_ms", "p90_ms", "p99_ms", "n", "cov", "rel_se", "rounds", "round_spread",
    "settled", "attempts", "warmup_runs", "timed_s", "wall_s", "measured_at", "source", "energy_mj", "energy_std_mj",
]
# Energy per inference (idle power subtracted), where the target's power sensor was read; LUTs
# written before energy was measured lack these columns.
OPTIONAL = {"energy_mj", "energy_std_mj"}
_FLOATS = {"flops_m", "params_m", "value_ms", "min_ms", "p10_ms", "median_ms", "mean_ms", "std_ms",
           "p90_ms", "p99_ms", "cov", "rel_se", "round_spread", "timed_s", "wall_s", "energy_mj", "energy_std_mj"}
_INTS = {"resolution", "n", "rounds", "attempts", "warmup_runs"}
ROW_KINDS = ("block", "network")


def json_path(csv_path: str | Path) -> Path:
    return Path(csv_path).with_suffix(".json")


def lut_files(csv_path: str | Path) -> list[Path]:
    """The files that make up a LUT: its CSV, its JSON, and the journal of an unfinished profile."""
    csv_path = Path(csv_path)
    return [csv_path, json_path(csv_path), csv_path.with_name(csv_path.name + ".journal")]


@dataclass
class LatencyTable:
    """Rows (dicts keyed by ``COLUMNS``) and metadata (target, device, protocol, predictor, ...)."""

    rows: list[dict]
    meta: dict = field(default_factory=dict)

    # -- the metadata's fields, typed (the JSON holds them; these are the only readers) ---------
    @property
    def statistic(self) -> str:
        return self.meta["statistic"]

    @property
    def space_name(self) -> str:
        return self.meta.get("space", "?")

    @property
    def resolutions(self) -> list[int]:
        return list(self.meta["resolutions"])

    @property
    def target_name(self) -> str:
        return self.meta["target"]["name"]

    @property
    def target_fingerprint(self) -> dict | None:
        return self.meta.get("target", {}).get("fingerprint")

    @property
    def device(self) -> dict:
        return dict(self.meta.get("device", {}))

    @property
    def round_rule(self) -> str:
        """The round each measured item kept of its rounds (LUTs before round rules: the fastest)."""
        return (self.meta.get("protocol") or {}).get("round_rule", "fastest")

    @property
    def batch(self) -> int:
        """Inputs per run the LUT's models were measured with (LUTs before batch sizes: 1)."""
        return int(self.meta.get("batch", 1))

    @property
    def precision(self) -> str:
        return self.meta.get("precision") or (self.target_fingerprint or {}).get("options", {}).get("precision") or "fp32"

    @property
    def quantization(self) -> dict | None:
        return self.meta.get("quantization")

    @property
    def label(self) -> str:
        """The LUT's name in objectives and columns: its target, and its batch size where it is not 1."""
        return self.target_name if self.batch == 1 else f"{self.target_name}-b{self.batch}"

    @property
    def deployment(self) -> dict:
        """What the LUT's numbers are numbers of: target, runtime and version, precision, batch, quantization."""
        device = self.meta.get("device", {})
        return {"target": self.target_name, "kind": self.meta.get("target", {}).get("kind"),
                "runtime": device.get("runtime"), "runtime_version": device.get("runtime_version"),
                "precision": self.precision, "batch": self.batch,
                "quantization": (self.quantization or {}).get("weights")}

    @property
    def sentinels(self) -> list[str]:
        return list(self.meta.get("sentinels", []))

    @property
    def predictor(self) -> dict | None:
        return self.meta.get("predictor")

    @property
    def report(self) -> dict:
        return self.meta.get("report", {})

    @property
    def version(self) -> int:
        return int(self.meta.get("version", 1))

    @property
    def history(self) -> list[dict]:
        return list(self.meta.get("history", []))

    def set_predictor(self, fitted: tuple[dict, dict]) -> None:
        """Store a fitted predictor's parameters and its cross-validated report."""
        self.meta["predictor"], self.meta["report"] = fitted

    def add_version(self, event: dict, history: list[dict] | None = None) -> None:
        """Make this table version ``event["version"]``, appending ``event`` to ``history`` (default:
        its own): the one place a LUT's version and history change."""
        self.meta["version"] = event["version"]
        self.meta["history"] = [*(self.history if history is None else history), event]

    @property
    def has_energy(self) -> bool:
        """Whether every row holds its energy per inference (mJ)."""
        return bool(self.rows) and all(r.get("energy_mj") is not None for r in self.rows)

    @property
    def energy(self) -> dict | None:
        """How energy was measured (sensor, windows), or None for a latency-only LUT."""
        return self.meta.get("energy")

    @property
    def energy_predictor(self) -> dict | None:
        return self.meta.get("energy_predictor")

    def set_energy_predictor(self, fitted: tuple[dict, dict]) -> None:
        """Store the fitted energy predictor's parameters and its cross-validated report."""
        self.meta["energy_predictor"], self.meta["energy_report"] = fitted

    @property
    def blocks(self) -> dict[str, dict]:
        return {r["key"]: r for r in self.rows if r["kind"] == "block"}

    @property
    def networks(self) -> list[dict]:
        return [r for r in self.rows if r["kind"] == "network"]

    def round_spreads(self, kind: str) -> list[float]:
        """How far each row of ``kind`` (block, network) spread between its rounds, where recorded."""
        return [r["round_spread"] for r in self.rows if r["kind"] == kind and r.get("round_spread") is not None]

    # -- files -------------------------------------------------------------------------------
    def to_csv_text(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({c: _format(row.get(c)) for c in COLUMNS})
        return buffer.getvalue()

    def write(self, csv_path: str | Path) -> None:
        """Write CSV then JSON, each atomically. The JSON records the CSV's digest, so a reader
        notices a pair torn apart by a crash between the two renames."""
        text = self.to_csv_text()
        self.meta.update(format=FORMAT, format_version=FORMAT_VERSION, rows=len(self.rows),
                         csv_sha256=hashlib.sha256(text.encode()).hexdigest())
        atomic_write_text(csv_path, text)
        atomic_write_text(json_path(csv_path), strict_json(self.meta, indent=2, sort_keys=True) + "\n")

    @classmethod
    def read(cls, csv_path: str | Path) -> LatencyTable:
        csv_path = Path(csv_path)
        if csv_path.suffix != ".csv":
            raise LutError(f"LUT path {csv_path} must end in .csv (its metadata lies beside it in .json)")
        try:
            text = csv_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise LutError(f"LUT {csv_path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise LutError(f"cannot read LUT {csv_path}: {exc}") from None
        try:
            meta = json.loads(json_path(csv_path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise LutError(f"LUT {csv_path} lacks its metadata file {json_path(csv_path)}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LutError(f"LUT metadata {json_path(csv_path)} is not valid JSON: {exc}") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise LutError(f"{json_path(csv_path)} is not an ofahw LUT metadata file")
        if meta.get("format_version", 0) > FORMAT_VERSION:
            raise LutError(f"LUT {csv_path} has format version {meta['format_version']}; this ofahw reads up to {FORMAT_VERSION}")
        if meta.get("csv_sha256") != hashlib.sha256(text.encode()).hexdigest():
            raise LutError(f"LUT {csv_path} does not match its metadata (edited, or torn by a crash); re-run `ofahw profile` to rebuild it")
        return cls(_parse_rows(text, csv_path), meta)


def _format(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def _parse_rows(text: str, path: Path) -> list[dict]:
    reader = csv.DictReader(io.StringIO(text))
    missing = set(COLUMNS) - OPTIONAL - set(reader.fieldnames or [])
    if missing:
        raise LutError(f"LUT {path} lacks columns {sorted(missing)}")
    rows = []
    for line, raw in enumerate(reader, start=2):
        try:
            rows.append(parse_row(raw))
        except (ValueError, json.JSONDecodeError) as exc:
            raise LutError(f"LUT {path} line {line} is malformed: {exc}") from None
    return rows


def parse_row(raw: dict) -> dict:
    """A CSV row (all strings) → typed values."""
    row: dict = {}
    for c in COLUMNS:
        value = raw.get(c, "")
        if value == "" or value is None:
            row[c] = None
        elif c in _FLOATS:
            row[c] = float(value)
        elif c in _INTS:
            row[c] = int(value)
        elif c == "settled":
            if value not in ("true", "false"):
                raise ValueError(f"settled must be true or false, got {value!r}")
            row[c] = value == "true"
        elif c == "config":
            row[c] = json.loads(value)
        else:
            row[c] = value
    if row["kind"] not in ROW_KINDS:
        raise ValueError(f"kind must be one of {ROW_KINDS}, got {row['kind']!r}")
    if row["key"] is None or row["value_ms"] is None or not row["value_ms"] > 0:
        raise ValueError("key and a positive value_ms are required")
    if row["kind"] == "network" and not isinstance(row["config"], dict):
        raise ValueError("a network row needs its config")
    return row


def deployment_differences(a: dict, b: dict) -> list[str]:
    """The fields in which two ``LatencyTable.deployment`` records differ, as 'field x vs y'."""
    return [f"{k} {a.get(k)} vs {b.get(k)}" for k in a if a.get(k) != b.get(k)]
