"""``ofahw search`` and ``ofahw accuracy fit``: parse, call the search package, print."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ofahw._io import check_writable, refuse_overwriting
from ofahw.cli.commands import _log
from ofahw.cli.main import emit
from ofahw.errors import ConfigError, UserError

# what a search and an ensemble run write into their --out folder
SEARCH_FILES = ("pareto.csv", "summary.json", "pareto.png", "hypervolume.png", "verify.csv", "checkpoint.pkl")
ENSEMBLE_FILES = ("ensembles.csv", "summary.json", "ensembles.png", "verify.csv")


def search(args) -> int:
    from ofahw.lut import lut_files
    from ofahw.predict import LutLatencyModel
    from ofahw.predict.sources import load_accuracy_source, usable_resolutions
    from ofahw.search import (
        SearchSettings,
        SubnetProblem,
        accuracy_objective,
        cost_objectives,
        latency_objective,
        parse_constraint,
        run_search,
    )
    from ofahw.search.outputs import write_run
    from ofahw.space import get_space

    out = Path(args.out)
    out_existed = out.exists()
    check_writable(out / "summary.json")
    refuse_overwriting([out / n for n in SEARCH_FILES], [f for lut in args.lut for f in lut_files(lut)] + [args.accuracy])
    luts = [LutLatencyModel.load(path) for path in args.lut]
    names = [m.target for m in luts]
    if len(set(names)) != len(names):
        raise ConfigError(f"two LUTs measure the same target ({', '.join(names)}); one LUT per device")
    spaces = {m.space.name for m in luts} | ({args.space} if args.space else set())
    if not spaces:
        raise ConfigError("a search needs --lut (one per device) or, for FLOPs / params objectives only, --space")
    if len(spaces) != 1:
        raise ConfigError(f"the LUTs and --space name different spaces ({', '.join(sorted(spaces))}); one search, one space")
    base = get_space(spaces.pop())
    resolutions = sorted(set.intersection(*(set(m.table.meta["resolutions"]) for m in luts))) if luts else list(base.resolutions)
    if not resolutions:
        raise ConfigError("the LUTs share no profiled resolution")
    accuracy = load_accuracy_source(args.accuracy, base.with_resolutions(resolutions), resolutions=args.accuracy_resolutions)
    usable, unseen = usable_resolutions(accuracy, resolutions)
    if not usable:
        raise ConfigError(f"the accuracy source knows resolutions {list(accuracy.resolutions)}, none of those the LUTs "
                          f"profiled ({resolutions}): {accuracy.source}")
    if unseen:
        _log(f"note: resolutions {unseen} are left out of the search: the accuracy source was trained at "
             f"{list(accuracy.resolutions)} only")
    resolutions = usable
    space = base.with_resolutions(resolutions)
    accuracy = accuracy.restricted(space)
    settings = SearchSettings(algorithm=args.algorithm, pop_size=args.pop_size, generations=args.generations, seed=args.seed,
                              mutation_rate=args.mutation_rate, crossover_prob=args.crossover_prob, reward=args.reward,
                              latency_target=args.latency_target,
                              n_limits=args.limits, reference_point=args.reference_point)
    _log(f"search {settings.algorithm} over {space.name} at resolutions {resolutions}: building the objectives")
    objectives = [accuracy_objective(accuracy)]
    objectives += [latency_objective(m, space) for m in luts]
    objectives += cost_objectives(space, args.objective or [])
    if len(objectives) < 2:
        raise ConfigError("a search needs at least one latency (--lut) or cost (--objective flops|params) objective")
    constraints = [parse_constraint(text, objectives) for text in args.constraint or []]
    problem = SubnetProblem(space, objectives, constraints)
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=settings.generations, desc=f"search {settings.algorithm}", unit="gen", file=sys.stderr)

    def progress(done, total):
        bar.n = done
        bar.refresh()

    result = run_search(problem, settings, checkpoint=out / "checkpoint.pkl", fresh=args.fresh,
                        progress=progress if bar else None, log=_log)
    if bar:
        bar.close()
    if len(result.X) == 0 and problem.constraints:
        (out / "checkpoint.pkl").unlink(missing_ok=True)
        if not out_existed and not any(out.iterdir()):
            out.rmdir()
        raise UserError(f"{problem.unmet()}; nothing was written")
    extra = {}
    if args.verify:
        extra["verify"] = _verify(args, luts, problem, result, out)
    summary = write_run(out, problem, settings, result, extra)
    (out / "checkpoint.pkl").unlink(missing_ok=True)
    lines = [f"{settings.algorithm} (seed {settings.seed}): {len(result.X)} non-dominated subnets after {result.n_evals} "
             f"evaluations in {result.wall_s:.1f} s; hypervolume {result.hypervolume:.5g} (reference point "
             f"{np.round(result.reference_point, 4).tolist()})",
             *(f"  {o.name}: {o.source}" for o in objectives),
             f"  wrote {out / 'pareto.csv'}, {out / 'summary.json'}, {out / 'pareto.png'}, {out / 'hypervolume.png'}"]
    if args.verify:
        v = extra["verify"]
        lines.append(f"  verified on target {v['target']} ({v['statistic']}, measured now): MAPE {v['mape']:.1%}, within "
                     f"±10% {v['within_10pct']:.0%}, Kendall tau {v['kendall_tau']:.3f}; {v['measured_front_size']} of "
                     f"{v['n']} stay on the measured front; wrote {v['file']}")
    emit(args, summary, lines)
    return 0


def interrupted(args) -> str:
    """What an interrupted search leaves: its checkpoint, written every few generations, if any."""
    checkpoint = Path(args.out) / "checkpoint.pkl"
    if checkpoint.exists():
        return f"the checkpoint {checkpoint} (written every few generations) is kept; rerun the same command to resume"
    return "stopped before the first checkpoint: nothing was saved"


def _verify(args, luts, problem, result, out: Path) -> dict:
    from ofahw.measure import load_target
    from ofahw.verify import verify_front

    target = load_target(args.target or (luts[0].target if luts else "cpu"))
    lut = next((m for m in luts if m.target == target.name), luts[0] if luts else None)
    if lut is None:
        raise UserError("--verify needs a LUT of the target to compare predictions with")
    column = [o.name for o in problem.objectives].index(f"latency_ms@{lut.target}")
    configs = [problem.space.decode(x) for x in result.X]
    return verify_front(problem.space, configs, result.values[:, column], result.values[:, 0], target,
                        out / "verify.csv", progress=not args.no_progress)


def accuracy_fit(args) -> int:
    from ofahw.predict.fitted_accuracy import FittedAccuracyPredictor, load_accuracy_data
    from ofahw.space import get_space

    check_writable(Path(args.out))
    refuse_overwriting([args.out], [args.data])
    space = get_space(args.space)
    configs, y = load_accuracy_data(args.data, space)
    predictor = FittedAccuracyPredictor.fit(configs, y, space, seed=args.seed, trained_on=str(args.data))
    predictor.save(args.out)
    report = predictor.report
    best = report["candidates"][report["chosen"]]
    lines = [f"fitted a {report['chosen']} accuracy predictor for {space.name} on {len(y)} subnets of {args.data}; "
             f"5-fold CV: Kendall tau {best['kendall_tau']:.3f}, RMSE {best['rmse'] * 100:.2f} points; wrote {args.out}",
             *(f"  candidate {name}: tau {c['kendall_tau']:.3f}, RMSE {c['rmse'] * 100:.2f} points"
               for name, c in report["candidates"].items())]
    emit(args, {"out": args.out, **report}, lines)
    return 0


def evaluate(args) -> int:
    from ofahw.evaluate import ImageFolder, evaluate_subnets
    from ofahw.space import get_space
    from ofahw.space.weights import fetch_weights

    out = Path(args.out)
    check_writable(out / "accuracy.jsonl")
    refuse_overwriting([out / "accuracy.jsonl", out / "labels.npy"], [args.configs, args.weights])
    space = get_space(args.space)
    configs = read_configs(args.configs)
    weights = Path(args.weights) if args.weights else fetch_weights(space.name, download=args.download)
    data = ImageFolder(args.data, limit=args.limit)
    calibration = ImageFolder(args.calib or args.data, limit=args.calib_images)
    records = evaluate_subnets(space, configs, weights, data, calibration, out, batch_size=args.batch_size, log=_log)
    lines = [f"{len(records)} subnets evaluated on {len(data)} images of {args.data}; wrote {out / 'accuracy.jsonl'}, "
             f"{out / 'probs'}/ and {out / 'labels.npy'}",
             *(f"  {r['config_hash']} r={r['r']}: top-1 {r['top1']:.4f}, top-5 {r['top5']:.4f} (measured)" for r in records)]
    emit(args, {"out": str(out), "records": records}, lines)
    return 0


def read_configs(spec: str) -> list[dict]:
    """Configs from a JSON object, a file of one, JSON lines, or a search's pareto.csv."""
    import csv
    import json

    path = Path(spec)
    text = path.read_text(encoding="utf-8") if path.is_file() else spec
    try:
        if path.suffix == ".csv":
            return [json.loads(row["config"]) for row in csv.DictReader(text.splitlines())]
        stripped = text.strip()
        if stripped.startswith("["):
            return json.loads(stripped)
        return [json.loads(line) for line in stripped.splitlines() if line.strip()]
    except (json.JSONDecodeError, KeyError) as exc:
        raise UserError(f"cannot read configs from {spec[:80]}: {exc}") from None


def ensemble(args) -> int:
    import csv

    from ofahw.ensemble import EnsembleProblem, candidates, open_tables, run_ensemble_search
    from ofahw.ensemble.outputs import write_ensembles

    out = Path(args.out)
    check_writable(out / "summary.json")
    front_dir = Path(args.front).parent
    refuse_overwriting([out / n for n in ENSEMBLE_FILES], [args.front, front_dir / "summary.json", args.measured,
                                                          Path(args.probs) / "index.json", Path(args.probs).parent / "labels.npy"])
    try:
        rows = list(csv.DictReader(Path(args.front).read_text(encoding="utf-8").splitlines()))
    except OSError as exc:
        raise UserError(f"cannot read front {args.front}: {exc.strerror}") from None
    columns = [c for c in (rows[0] if rows else {}) if c.startswith("latency_ms@") and not c.endswith("_source")]
    column = args.latency_column or (columns[0] if columns else None)
    if not rows or column not in rows[0] or "config_hash" not in rows[0]:
        raise UserError(f"{args.front} is not a search's pareto.csv with config_hash and a latency column "
                        f"(latency columns found: {columns or 'none'})")
    members = [r["config_hash"] for r in rows]
    try:
        member_ms = np.array([float(r[column]) for r in rows])
    except (TypeError, ValueError):
        raise UserError(f"{args.front}: column {column} holds a value that is not a number") from None
    source = f"{column} of {args.front} ({rows[0].get(column + '_source', 'predicted')})"
    if args.measured:
        measured = {r["config_hash"]: r for r in csv.DictReader(Path(args.measured).read_text(encoding="utf-8").splitlines())}
        stat = next((c for c in next(iter(measured.values()), {}) if c.startswith("measured_")), None)
        if stat is None or set(members) - set(measured):
            raise UserError(f"{args.measured} is not the verify.csv of this front")
        member_ms = np.array([float(measured[m][stat]) for m in members])
        source = f"{stat} of {args.measured} (measured on target {measured[members[0]]['measured_on']})"
    tables, labels = open_tables(args.probs, members)
    reduced = candidates(tables, labels, n_candidates=args.candidates)
    problem = EnsembleProblem(reduced, member_ms, args.mode, min_members=args.min_members, max_members=args.max_members,
                              top5=args.top5)
    result = run_ensemble_search(problem, args.algorithm, args.pop_size, args.generations, args.seed)
    accuracy_source = f"measured: averaged class probabilities of {len(labels)} images ({args.probs})"
    settings = {"algorithm": args.algorithm, "seed": args.seed, "pop_size": args.pop_size, "generations": args.generations,
                "min_members": args.min_members, "max_members": args.max_members, "candidates": args.candidates}
    verify = None
    if args.verify:
        verify = _verify_ensembles(args, rows, members, result, out)
    summary = write_ensembles(out, problem, result, members, source, accuracy_source, settings,
                              {"verify": verify} if verify else None)
    lines = [f"{len(result.X)} ensembles on the front ({args.mode} latency) after {args.generations} generations in "
             f"{result.wall_s:.1f} s; hypervolume {result.hypervolume:.5g} vs {result.singles_hypervolume:.5g} for the "
             f"single subnets (reference point {np.round(result.reference_point, 4).tolist()})",
             f"  accuracy: {accuracy_source}; latency: {source}",
             f"  errors are exact (the final {result.rescored} ensembles rescored from the full tables in "
             f"{result.rescore_s:.1f} s); the search's {args.candidates}-candidate estimate was off for "
             f"{result.estimate_off} of them (worst share of samples it left undecided: {result.worst_unsure:.2%})",
             f"  wrote {out / 'ensembles.csv'}, {out / 'summary.json'}, {out / 'ensembles.png'}"]
    if verify:
        s, a = verify["search_model"], verify["members_alone_model"]
        lines.append(f"  verified {verify['n']} ensembles on target {verify['target']} ({args.mode}, {verify['statistic']}, "
                     f"measured now): search model MAPE {s['mape']:.1%}; {args.mode} model over members measured alone "
                     f"MAPE {a['mape']:.1%}; wrote {verify['file']}")
    emit(args, summary, lines)
    return 0


def _verify_ensembles(args, rows, members, result, out: Path) -> dict:
    import json

    from ofahw.ensemble.verify import verify_ensembles
    from ofahw.measure import load_target
    from ofahw.space import get_space

    configs = {r["config_hash"]: json.loads(r["config"]) for r in rows}
    name = args.space
    if name is None:
        try:
            name = json.loads((Path(args.front).parent / "summary.json").read_text())["space"]
        except (OSError, ValueError, KeyError):
            raise UserError("--verify needs --space (no summary.json beside the front names it)") from None
    space = get_space(name)
    picks = np.unique(np.linspace(0, len(result.X) - 1, min(args.verify_count, len(result.X))).round().astype(int))
    ensembles = [[members[j] for j in np.flatnonzero(result.X[i])] for i in picks]
    targets = [load_target(t) for t in args.target or ["cpu"]]
    return verify_ensembles(space, configs, ensembles, result.F[picks, -1], args.mode, targets, out / "verify.csv")
