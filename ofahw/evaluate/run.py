"""Evaluate subnets: build with pretrained weights, recalibrate BatchNorm, measure top-1 / top-5,
keep per-sample class probabilities (float16, memory-mapped) for the ensembles."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ofahw._io import atomic_write_text, strict_json
from ofahw.images import ImageFolder
from ofahw.space import Space, recalibrate_batchnorm


def evaluate_subnets(space: Space, configs: list[dict], weights: Path, data: ImageFolder, calibration: ImageFolder,
                     out: Path, batch_size: int = 64, log: Callable[[str], None] = print) -> list[dict]:
    """Top-1 / top-5 of each config on ``data``; appends to ``out/accuracy.jsonl`` (a rerun skips
    configs already there) and writes ``out/probs/<hash>.npy`` (n_images, n_classes) float16 (open with ``np.load(mmap_mode='r')``) with
    ``out/probs/index.json`` and ``out/labels.npy``."""
    import torch

    probs_dir = out / "probs"
    probs_dir.mkdir(parents=True, exist_ok=True)
    labels = data.labels
    np.save(out / "labels.npy", labels)
    done = _done(out / "accuracy.jsonl")
    index_path = probs_dir / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    records = []
    for i, config in enumerate(configs, 1):
        config = space.canonical(config)
        key = space.config_hash(config)
        if key in done:
            records.append(done[key])
            continue
        r = config["r"]
        net = space.build_network(config, weights=weights)
        recalibrate_batchnorm(net, calibration, r, batch_size)
        table_path = probs_dir / f"{key}.npy"
        part = table_path.with_name(f"{key}.part.npy")
        table = None
        correct1 = correct5 = 0
        row = 0
        with torch.no_grad():
            for images, batch_labels in data.batches(r, batch_size):
                p = torch.softmax(net(torch.from_numpy(images)).float(), dim=1).numpy()
                if table is None:
                    table = np.lib.format.open_memmap(part, mode="w+", dtype=np.float16, shape=(len(data), p.shape[1]))
                table[row:row + len(p)] = p
                row += len(p)
                top5 = np.argsort(-p, axis=1)[:, :5]
                correct1 += int((top5[:, 0] == batch_labels).sum())
                correct5 += int((top5 == batch_labels[:, None]).any(axis=1).sum())
        table.flush()
        del table
        os.replace(part, table_path)
        record = {**config, "config_hash": key, "top1": correct1 / len(data), "top5": correct5 / len(data), "n_images": len(data),
                  "source": f"measured: top-1 on {data.root} ({len(data)} images), BatchNorm recalibrated on "
                            f"{calibration.root} ({len(calibration)} images), weights {weights}"}
        with open(out / "accuracy.jsonl", "a", encoding="utf-8") as fh:
            fh.write(strict_json(record) + "\n")
        index[key] = {"file": table_path.name, "shape": [len(data), int(p.shape[1])],
                      "dtype": "float16", "config": config, "top1": record["top1"]}
        atomic_write_text(index_path, strict_json(index, indent=1) + "\n")
        records.append(record)
        log(f"[{i}/{len(configs)}] {key} r={r}: top-1 {record['top1']:.4f}, top-5 {record['top5']:.4f} "
            f"on {len(data)} images")
    return records


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
