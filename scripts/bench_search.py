"""Benchmark of `ofahw search`: every algorithm and baseline at equal evaluation budgets on one LUT
and one accuracy source; hypervolume (one reference point for all) and time. Also the fitted
accuracy predictor's Kendall tau on held-out splits of the shared ImageNet data (mean over --splits
random 80/20 splits).

Goals: NSGA-II at 100 x 1000 generations in <= 20 s; NSGA-II's hypervolume above OFA's EA run at 9
limits with the same total evaluations; the fitted predictor's held-out tau >= 0.9.

    python3 -m ofahw profile --target cpu --space ofa-mbv3-w1.0 --resolutions 128,160,192 --samples 40 --out lut/cpu-w1.0.csv
    python3 scripts/bench_search.py --lut lut/cpu-w1.0.csv [--generations 1000] [--data ../shared/data/...jsonl]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from ofahw.predict import LutLatencyModel
from ofahw.predict.fitted_accuracy import FittedAccuracyPredictor, load_accuracy_data
from ofahw.search import ALGORITHMS, SearchSettings, SubnetProblem, accuracy_objective, latency_objective, run_search
from ofahw.search.archive import reference_point

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ofa_mbv3_w1.0_imagenet_top1.dev.jsonl"


def held_out_fit(configs: list[dict], y: np.ndarray, space, seed: int) -> tuple[str, int, int, float, float]:
    """Fit on a random 80% and score on the other 20%: (chosen model, n train, n test, Kendall tau, RMSE)."""
    order = np.random.default_rng(seed).permutation(len(y))
    cut = int(0.8 * len(y))
    train, test = order[:cut], order[cut:]
    held = FittedAccuracyPredictor.fit([configs[i] for i in train], y[train], space, seed=seed)
    predicted = held.predict_encoded(np.array([held.space.encode(configs[i]) for i in test]))
    return (held.report["chosen"], len(train), len(test), float(kendalltau(y[test], predicted).statistic),
            float(np.sqrt(np.mean((predicted - y[test]) ** 2))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lut", default="lut/cpu-w1.0.csv")
    parser.add_argument("--data", default=str(DATA), help="(config, top1) JSON lines of the LUT's space")
    parser.add_argument("--generations", type=int, default=1000)
    parser.add_argument("--pop-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--splits", type=int, default=20,
                        help="random 80/20 splits the predictor's held-out tau is averaged over (one split's tau "
                             "varies by about +-0.01 with which 261 subnets it holds out)")
    args = parser.parse_args()

    model = LutLatencyModel.load(args.lut)
    configs, y = load_accuracy_data(args.data, model.space)
    splits = [held_out_fit(configs, y, model.space, seed) for seed in range(args.seed, args.seed + args.splits)]
    (chosen, n_train, n_test, tau, rmse), taus = splits[0], np.array([s[3] for s in splits])
    models = ", ".join(f"{name} {n}" for name, n in Counter(s[0] for s in splits).items())
    print(f"ofahw bench_search — LUT {args.lut} (target {model.target}, {model.space.name}, resolutions "
          f"{model.table.meta['resolutions']}); accuracy data {args.data} ({len(y)} subnets, measured ImageNet top-1)")
    print(f"fitted accuracy predictor ({chosen}), trained on {n_train}, held-out {n_test} (split seed {args.seed}): "
          f"Kendall tau {tau:.3f}, RMSE {rmse * 100:.2f} points; over {len(taus)} random 80/20 splits: tau "
          f"{taus.mean():.4f} mean +- {taus.std(ddof=1) / np.sqrt(len(taus)):.4f} (standard error; goal >= 0.9), "
          f"{taus.min():.3f}-{taus.max():.3f} (chosen: {models})")

    accuracy = FittedAccuracyPredictor.fit(configs, y, model.space, seed=args.seed)  # all data for the searches
    space = model.space.with_resolutions(sorted(set(model.table.meta["resolutions"]) & set(accuracy.space.resolutions)))
    problem = SubnetProblem(space, [accuracy_objective(accuracy.restricted(space)), latency_objective(model, space)], [])
    ref = reference_point(problem, np.random.default_rng(12345))
    print(f"search space {space.name} at resolutions {list(space.resolutions)}; objectives: predicted top-1 (fitted "
          f"above), {problem.objectives[1].source}")
    print(f"budget {args.pop_size} x {args.generations} = {args.pop_size * args.generations} evaluations each; "
          f"hypervolume of (-top1, latency ms) up to reference point {np.round(ref, 4).tolist()}")
    print(f"{'algorithm':16s} {'hypervolume':>12s} {'front':>6s} {'evals':>8s} {'time s':>8s}")
    results = {}
    for name in ALGORITHMS:
        settings = SearchSettings(algorithm=name, pop_size=args.pop_size, generations=args.generations, seed=args.seed,
                                  reference_point=ref.tolist())
        start = time.perf_counter()
        result = run_search(problem, settings, log=lambda m: None)
        wall = time.perf_counter() - start
        results[name] = (result, wall)
        print(f"{name:16s} {result.hypervolume:12.6f} {len(result.X):6d} {result.n_evals:8d} {wall:8.1f}", flush=True)
    nsga2, t = results["nsga2"]
    ea = results["ofa-ea"][0]
    print(f"NSGA-II {args.pop_size} x {args.generations}: {t:.1f} s (goal <= 20 s); hypervolume {nsga2.hypervolume:.6f} "
          f"vs OFA's EA at 9 limits {ea.hypervolume:.6f} ({'above' if nsga2.hypervolume > ea.hypervolume else 'NOT above'})")


if __name__ == "__main__":
    main()
