"""Measuring several items in rounds, as every stage that measures does (a profile, a drift check,
a verification): each round over all items in a new random order, the best round of each kept."""

from __future__ import annotations

import numpy as np

from ofahw.export import Artifact, OnnxCache, export_ahead, network_artifact, network_job
from ofahw.measure.kept import keep_rounds
from ofahw.measure.protocol import Measurement, Protocol
from ofahw.measure.target import Target


def measure_sequence(target: Target, artifacts: list[Artifact], protocol: Protocol, seed: int = 0,
                     progress: bool = False) -> list[tuple[int, Measurement]]:
    """Every round of the artifacts as ``(artifact index, measurement)`` in the order measured:
    ``protocol.rounds`` rounds, each over all artifacts in a new random order. ``target`` must be open."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    sequence: list[tuple[int, Measurement]] = []
    with tqdm(total=protocol.rounds * len(artifacts), desc=f"measure {target.name}", unit="round", disable=not progress,
              dynamic_ncols=True, leave=False) as bar:
        for _ in range(protocol.rounds):
            for i in rng.permutation(len(artifacts)):
                sequence.append((int(i), target.measure(artifacts[i], protocol)))
                bar.update(1)
    return sequence


def measure_rounds(target: Target, artifacts: list[Artifact], protocol: Protocol, seed: int = 0,
                   progress: bool = False) -> list[list[Measurement]]:
    """Every round of each artifact (:func:`measure_sequence`), by artifact. ``target`` must be open."""
    rounds: list[list[Measurement]] = [[] for _ in artifacts]
    for i, m in measure_sequence(target, artifacts, protocol, seed, progress):
        rounds[i].append(m)
    return rounds


def measure_in_rounds(target: Target, artifacts: list[Artifact], protocol: Protocol, seed: int = 0,
                      progress: bool = False) -> list[Measurement]:
    """Each artifact measured in rounds (:func:`measure_sequence`): the round the protocol's round rule
    keeps, carrying the spread of its rounds (:func:`ofahw.measure.kept.keep_rounds`). ``target`` must be open."""
    kept = keep_rounds(measure_sequence(target, artifacts, protocol, seed, progress), protocol.statistic, protocol.round_rule)
    return [kept[i] for i in range(len(artifacts))]


def subnet_artifacts(target: Target, space, configs: list[dict], batch: int = 1, progress: bool = False) -> list[Artifact]:
    """The models of whole subnets ``configs`` of ``space`` at ``batch`` images a run, as ``target``
    measures them: exported first where the cache lacks them, in parallel processes where many do
    (:func:`ofahw.export.export_ahead`)."""
    cache = OnnxCache()
    jobs = [target.export_job(network_job(space, c, batch)) for c in configs]
    export_ahead([j for j in jobs if j is not None], cache, progress=progress, desc=f"export {target.name}")
    return [network_artifact(space, c, cache, batch) for c in configs]


def measure_subnets(target: Target, space, configs: list[dict], batch: int = 1, seed: int = 0,
                    progress: bool = False) -> list[Measurement]:
    """Whole subnets ``configs`` of ``space`` at ``batch`` images a run (:func:`subnet_artifacts`),
    measured in rounds with the target's network protocol. ``target`` must be open."""
    artifacts = subnet_artifacts(target, space, configs, batch, progress)
    return measure_in_rounds(target, artifacts, target.protocol.for_network(), seed, progress)
