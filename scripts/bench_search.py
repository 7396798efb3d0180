"""Benchmark of `ofahw search`: every algorithm and baseline at equal evaluation budgets on one LUT
and one accuracy source; hypervolume (one reference point for all) and time. Also the fitted
accuracy predictor's Kendall tau on a held-out split of the shared ImageNet data.

Goals: NSGA-II at 100 x 1000 generations in <= 20 s; NSGA-II's hypervolume above OFA's EA run at 9
limits with the same total evaluations; the fitted predictor's held-out tau >= 0.9.

    python3 -m ofahw profile --target cpu --space ofa-mbv3-w1.0 --resolutions 128,160,192 --samples 40 --out lut/cpu-w1.0.csv
    python3 scripts/bench_search.py --lut lut/cpu-w1.0.csv [--generations 1000] [--data ../shared/data/...jsonl]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from ofahw.predict import LutLatencyModel
from ofahw.predict.fitted_accuracy import FittedAccuracyPredictor, load_accuracy_data
from ofahw.search import ALGORITHMS, SearchSettings, SubnetProblem, accuracy_objective, latency_objective, run_search
from ofahw.search.archive import reference_point

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ofa_mbv3_w1.0_imagenet_top1.dev.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lut", default="lut/cpu-w1.0.csv")
    parser.add_argument("--data", default=str(DATA), help="(config, top1) JSON lines of the LUT's space")
    parser.add_argument("--generations", type=int, default=1000)
    parser.add_argument("--pop-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model = LutLatencyModel.load(args.lut)
    configs, y = load_accuracy_data(args.data, model.space)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(y))
    cut = int(0.8 * len(y))
    train, test = order[:cut], order[cut:]
    held = FittedAccuracyPredictor.fit([configs[i] for i in train], y[train], model.space, seed=args.seed)
    X_test = np.array([held.space.encode(configs[i]) for i in test])
    tau = kendalltau(y[test], held.predict_encoded(X_test)).statistic
    rmse = float(np.sqrt(np.mean((held.predict_encoded(X_test) - y[test]) ** 2)))
    print(f"ofahw bench_search — LUT {args.lut} (target {model.target}, {model.space.name}, resolutions "
          f"{model.table.meta['resolutions']}); accuracy data {args.data} ({len(y)} subnets, measured ImageNet top-1)")
    print(f"fitted accuracy predictor ({held.report['chosen']}), trained on {len(train)}, held-out {len(test)}: "
          f"Kendall tau {tau:.3f} (goal >= 0.9), RMSE {rmse * 100:.2f} points")

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
