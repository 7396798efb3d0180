"""Evaluate subnets: build with pretrained weights, recalibrate BatchNorm, measure top-1 / top-5,
keep per-sample class probabilities (float16, memory-mapped) for the ensembles.

Evaluating (:class:`Evaluator`, which may run in a Ray worker) is apart from writing the results
(:class:`EvaluationOutputs`, always in the process that owns the output folder)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ofahw._io import atomic_write_text, strict_json
from ofahw.images import ImageFolder
from ofahw.space import Space, recalibrate_batchnorm


@dataclass(frozen=True)
class Evaluation:
    """One subnet's result: top-1 / top-5 and its class probabilities per image, (n_images, n_classes) float16."""

    config: dict
    key: str
    top1: float
    top5: float
    probs: np.ndarray


class Evaluator:
    """Evaluates subnets one at a time with the supernet's weights loaded once."""

    def __init__(self, space: Space, weights: Path, data: ImageFolder, calibration: ImageFolder, batch_size: int = 64,
                 device: str = "cpu"):
        self.space, self.data, self.calibration, self.batch_size, self.device = space, data, calibration, batch_size, device
        self.supernet = space.load_supernet(weights)

    def evaluate(self, config: dict) -> Evaluation:
        import torch

        config = self.space.canonical(config)
        r = config["r"]
        net = self.space.cut_subnet(self.supernet, config).to(self.device)
        recalibrate_batchnorm(net, self.calibration, r, self.batch_size, self.device)
        probs = None
        correct1 = correct5 = row = 0
        with torch.no_grad():
            for images, labels in self.data.batches(r, self.batch_size):
                p = torch.softmax(net(torch.from_numpy(images).to(self.device)).float(), dim=1).cpu().numpy()
                if probs is None:
                    probs = np.empty((len(self.data), p.shape[1]), dtype=np.float16)
                probs[row:row + len(p)] = p
                row += len(p)
                top5 = np.argsort(-p, axis=1)[:, :5]
                correct1 += int((top5[:, 0] == labels).sum())
                correct5 += int((top5 == labels[:, None]).any(axis=1).sum())
        n = len(self.data)
        return Evaluation(config, self.space.config_hash(config), correct1 / n, correct5 / n, probs)


class EvaluationOutputs:
    """An evaluation's output folder: ``accuracy.jsonl`` (one record per subnet, the mark that it is
    done), ``probs/<hash>.npy`` (open with ``np.load(mmap_mode='r')``) with ``probs/index.json``, and
    ``labels.npy``. Each result is written once, its table first and its record last, so an
    interruption loses at most the subnet in flight."""

    def __init__(self, out: Path, data: ImageFolder, calibration: ImageFolder, weights: Path):
        self.out, self.data = Path(out), data
        self.probs_dir = self.out / "probs"
        self.probs_dir.mkdir(parents=True, exist_ok=True)
        np.save(self.out / "labels.npy", data.labels)
        self.accuracy_path = self.out / "accuracy.jsonl"
        self.done = _done(self.accuracy_path)
        self.index_path = self.probs_dir / "index.json"
        self.index = json.loads(self.index_path.read_text()) if self.index_path.exists() else {}
        self.source = (f"measured: top-1 on {data.root} ({len(data)} images), BatchNorm recalibrated on "
                       f"{calibration.root} ({len(calibration)} images), weights {weights}")

    def write(self, result: Evaluation) -> dict:
        """Record ``result`` (unless its subnet is already recorded) and return its record."""
        if result.key in self.done:
            return self.done[result.key]
        table_path = self.probs_dir / f"{result.key}.npy"
        part = table_path.with_name(f"{result.key}.part.npy")
        np.save(part, result.probs)
        os.replace(part, table_path)
        self.index[result.key] = {"file": table_path.name, "shape": list(result.probs.shape), "dtype": "float16",
                                  "config": result.config, "top1": result.top1}
        atomic_write_text(self.index_path, strict_json(self.index, indent=1) + "\n")
        record = {**result.config, "config_hash": result.key, "top1": result.top1, "top5": result.top5,
                  "n_images": len(self.data), "source": self.source}
        with open(self.accuracy_path, "a", encoding="utf-8") as fh:
            fh.write(strict_json(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.done[result.key] = record
        return record

    def finish(self, keys: list[str]) -> None:
        """Rewrite ``accuracy.jsonl`` with ``keys`` first, in that order (results that arrived out of
        order, from several workers, end up as one worker would have written them), then the rest."""
        order = [k for k in dict.fromkeys(keys) if k in self.done] + [k for k in self.done if k not in keys]
        atomic_write_text(self.accuracy_path, "".join(strict_json(self.done[k]) + "\n" for k in order))


def evaluate_subnets(space: Space, configs: list[dict], weights: Path, data: ImageFolder, calibration: ImageFolder,
                     out: Path, batch_size: int = 64, log: Callable[[str], None] = print) -> list[dict]:
    """Top-1 / top-5 of each config on ``data``, recorded in ``out`` (:class:`EvaluationOutputs`; a
    rerun skips configs already there), here in this process."""
    outputs = EvaluationOutputs(out, data, calibration, weights)
    keys = [space.config_hash(space.canonical(c)) for c in configs]
    evaluator = None
    for i, (config, key) in enumerate(zip(configs, keys, strict=True), 1):
        if key in outputs.done:
            continue
        evaluator = evaluator or Evaluator(space, weights, data, calibration, batch_size)
        record = outputs.write(evaluator.evaluate(config))
        log(progress_text(i, len(configs), record))
    outputs.finish(keys)
    return [outputs.done[k] for k in dict.fromkeys(keys)]


def progress_text(i: int, n: int, record: dict, where: str = "") -> str:
    """The line logged when a subnet is done."""
    return (f"[{i}/{n}] {record['config_hash']} r={record['r']}: top-1 {record['top1']:.4f}, top-5 {record['top5']:.4f} "
            f"on {record['n_images']} images{where}")


def _done(path: Path) -> dict:
    """Records already in ``accuracy.jsonl``, by config hash."""
    out = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by an interruption: that subnet is evaluated again
            out[record.get("config_hash")] = record
    return out
