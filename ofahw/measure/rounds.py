"""Measuring several items in rounds, as every stage that measures does (a profile, a drift check,
a verification): each round over all items in a new random order, the best round of each kept."""

from __future__ import annotations

import numpy as np

from ofahw.export import Artifact, OnnxCache, export_ahead, network_artifact, network_job
from ofahw.measure.protocol import Measurement, Protocol, best_round
from ofahw.measure.target import Target


def measure_rounds(target: Target, artifacts: list[Artifact], protocol: Protocol, seed: int = 0,
                   progress: bool = False) -> list[list[Measurement]]:
    """Every round of each artifact: ``protocol.rounds`` rounds, each over all artifacts in a new
    random order. ``target`` must be open."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    rounds: list[list[Measurement]] = [[] for _ in artifacts]
    with tqdm(total=protocol.rounds * len(artifacts), desc=f"measure {target.name}", unit="round", disable=not progress,
              dynamic_ncols=True, leave=False) as bar:
        for _ in range(protocol.rounds):
            for i in rng.permutation(len(artifacts)):
                rounds[i].append(target.measure(artifacts[i], protocol))
                bar.update(1)
    return rounds


def measure_in_rounds(target: Target, artifacts: list[Artifact], protocol: Protocol, seed: int = 0,
                      progress: bool = False) -> list[Measurement]:
    """Each artifact measured in rounds (:func:`measure_rounds`): the round the protocol's round rule
    keeps, carrying the spread of its rounds (:func:`best_round`). ``target`` must be open."""
    return [best_round(r, protocol.statistic, protocol.round_rule) for r in measure_rounds(target, artifacts, protocol, seed, progress)]


def measure_subnets(target: Target, space, configs: list[dict], batch: int = 1, seed: int = 0,
                    progress: bool = False) -> list[Measurement]:
    """Whole subnets ``configs`` of ``space`` at ``batch`` images a run, measured in rounds with the
    target's network protocol (exported first where the cache lacks them, in parallel processes where
    many do: :func:`ofahw.export.export_ahead`). ``target`` must be open."""
    cache = OnnxCache()
    jobs = [target.export_job(network_job(space, c, batch)) for c in configs]
    export_ahead([j for j in jobs if j is not None], cache, progress=progress, desc=f"export {target.name}")
    artifacts = [network_artifact(space, c, cache, batch) for c in configs]
    return measure_in_rounds(target, artifacts, target.protocol.for_network(), seed, progress)
