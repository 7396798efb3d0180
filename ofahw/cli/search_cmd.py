"""``ofahw search`` and ``ofahw accuracy fit``: parse, call the search package, print."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ofahw._io import check_writable, refuse_overwriting
from ofahw.cli.render import emit, progress_line
from ofahw.errors import UserError
from ofahw.fidelity import chosen_scores

# what a search and an ensemble run write into their --out folder
SEARCH_FILES = ("pareto.csv", "summary.json", "pareto.png", "hypervolume.png", "verify.csv", "checkpoint.pkl")
ENSEMBLE_FILES = ("ensembles.csv", "summary.json", "ensembles.png", "verify.csv")


def search(args) -> int:
    from ofahw.cli._targets import refuse_unused_ray
    from ofahw.lut import lut_files
    from ofahw.search import SearchSettings, run_search
    from ofahw.search.outputs import write_run
    from ofahw.search.setup import build_problem

    refuse_unused_ray(args, args.verify, "--verify")
    out = Path(args.out)
    out_existed = out.exists()
    check_writable(out / "summary.json")
    refuse_overwriting([out / n for n in SEARCH_FILES], [f for lut in args.lut for f in lut_files(lut)] + [args.accuracy])
    settings = SearchSettings(algorithm=args.algorithm, pop_size=args.pop_size, generations=args.generations, seed=args.seed,
                              mutation_rate=args.mutation_rate, crossover_prob=args.crossover_prob, reward=args.reward,
                              latency_target=args.latency_target,
                              n_limits=args.limits, reference_point=args.reference_point)
    problem, luts = build_problem(args.lut, args.accuracy, args.space, args.objective or [], args.constraint or [],
                                  args.accuracy_resolutions, log=progress_line, batch=args.batch)
    objectives = problem.objectives
    # placed before the search, so that a target the cluster cannot place is refused before the wait
    target = _verify_target(args, luts) if args.verify else None
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=settings.generations, desc=f"search {settings.algorithm}", unit="gen", file=sys.stderr)

    def progress(done, total):
        bar.n = done
        bar.refresh()

    result = run_search(problem, settings, checkpoint=out / "checkpoint.pkl", fresh=args.fresh,
                        progress=progress if bar else None, log=progress_line)
    if bar:
        bar.close()
    if len(result.X) == 0 and problem.constraints:
        (out / "checkpoint.pkl").unlink(missing_ok=True)
        if not out_existed and not any(out.iterdir()):
            out.rmdir()
        raise UserError(f"{problem.unmet()}; nothing was written")
    extra = {}
    if args.verify:
        extra["verify"] = _verify(args, target, luts, problem, result, out)
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


def pick(args) -> int:
    from ofahw.search.pick import pick as pick_members

    picks = pick_members(args.front, args.constraint or [], args.by, args.limits, args.limits_on, args.verify)
    lines = []
    for chosen in picks:
        under = f"under latency limit {chosen.limit:g} ms: " if chosen.limit is not None else ""
        lines.append(f"{under}rank {chosen.rank} of {args.front}, subnet {chosen.member.config_hash}")
        lines += [f"  {name} {value:.4g} — {chosen.sources[name]}" for name, value in chosen.values.items()]
        lines.append(f"  config {json.dumps(chosen.member.config, separators=(',', ':'))}")
    emit(args, {"front": args.front, "picks": [c.to_dict() for c in picks]}, lines)
    return 0


def interrupted(args) -> str:
    """What an interrupted search leaves: its checkpoint, written every few generations, if any."""
    checkpoint = Path(args.out) / "checkpoint.pkl"
    if checkpoint.exists():
        return f"the checkpoint {checkpoint} (written every few generations) is kept; rerun the same command to resume"
    return "stopped before the first checkpoint: nothing was saved"


def _verify_target(args, luts):
    from ofahw.cli._targets import load_targets

    [target] = load_targets([args.target or (luts[0].target if luts else "cpu")], args)
    return target


def _verify(args, target, luts, problem, result, out: Path) -> dict:
    from ofahw.lut import check_target
    from ofahw.verify import verify_front

    lut = next((m for m in luts if m.target == target.name), luts[0] if luts else None)
    if lut is None:
        raise UserError("--verify needs a LUT of the target to compare predictions with")
    if lut.target == target.name:
        check_target(lut.table, target, lut.path)
    column = [o.name for o in problem.objectives].index(f"latency_ms@{lut.label}")
    configs = [problem.space.decode(x) for x in result.X]
    return verify_front(problem.space, configs, result.values[:, column], result.values[:, 0], target,
                        out / "verify.csv", progress=not args.no_progress, batch=lut.table.batch)


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
    best = chosen_scores(report)
    lines = [f"fitted a {report['chosen']} accuracy predictor for {space.name} on {len(y)} subnets of {args.data}; "
             f"5-fold CV: Kendall tau {best['kendall_tau']:.3f}, RMSE {best['rmse'] * 100:.2f} points; wrote {args.out}",
             *(f"  candidate {name}: tau {c['kendall_tau']:.3f}, RMSE {c['rmse'] * 100:.2f} points"
               for name, c in report["candidates"].items())]
    emit(args, {"out": args.out, **report}, lines)
    return 0


def evaluate(args) -> int:
    from ofahw.evaluate import ImageFolder, evaluate_subnets, read_configs
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
    if args.ray is not None:
        from ofahw.cluster import evaluate_on_ray

        records = evaluate_on_ray(space, configs, weights, data, calibration, out, args.ray, workers=args.workers,
                                  worker_cpus=args.worker_cpus, batch_size=args.batch_size, log=progress_line)
    elif args.workers is not None:
        raise UserError("--workers sets the Ray workers of --ray; without --ray subnets are evaluated here, one at a time")
    else:
        records = evaluate_subnets(space, configs, weights, data, calibration, out, batch_size=args.batch_size, log=progress_line)
    where = f"on the Ray cluster {args.ray}" if args.ray is not None else "here"
    lines = [f"{len(records)} subnets evaluated {where} on {len(data)} images of {args.data}; wrote {out / 'accuracy.jsonl'}, "
             f"{out / 'probs'}/ and {out / 'labels.npy'}",
             *(f"  {r['config_hash']} r={r['r']}: top-1 {r['top1']:.4f}, top-5 {r['top5']:.4f} (measured)" for r in records)]
    emit(args, {"out": str(out), "records": records}, lines)
    return 0


def ensemble(args) -> int:
    from ofahw.cli._targets import load_targets, refuse_unused_ray
    from ofahw.ensemble import EnsembleProblem, candidates, open_tables, run_ensemble_search
    from ofahw.ensemble.outputs import write_ensembles
    from ofahw.search.outputs import read_front
    from ofahw.verify import read_verify

    refuse_unused_ray(args, args.verify, "--verify")
    out = Path(args.out)
    check_writable(out / "summary.json")
    front_dir = Path(args.front).parent
    refuse_overwriting([out / n for n in ENSEMBLE_FILES], [args.front, front_dir / "summary.json", args.measured,
                                                          Path(args.probs) / "index.json", Path(args.probs).parent / "labels.npy"])
    front = read_front(args.front)
    columns = front.latency_columns()
    column = args.latency_column or (columns[0] if columns else None)
    if column not in front.members[0].values:
        raise UserError(f"{args.front} has no latency column {column or ''} (latency columns found: {columns or 'none'})")
    members = front.hashes
    member_ms = front.column(column)
    source = f"{column} of {args.front} ({front.members[0].sources.get(column) or 'predicted'})"
    verified = None
    if args.measured:
        verified = read_verify(args.measured)
        if set(members) - set(verified.measured_ms):
            raise UserError(f"{args.measured} is not the verify.csv of this front (it lacks some of its members)")
        member_ms = np.array([verified.measured_ms[m] for m in members])
        source = f"measured {verified.statistic} of {args.measured} (measured on target {verified.measured_on})"
    member_mj, energy_source = None, None
    if args.energy or args.energy_column:
        energy = args.energy_column or next(iter(front.energy_columns()), None)
        if energy not in front.members[0].values:
            raise UserError(f"{args.front} has no energy column {energy or ''} (energy columns found: "
                            f"{front.energy_columns() or 'none'}; search with --objective energy)")
        member_mj = front.column(energy)
        energy_source = f"{energy} of {args.front} ({front.members[0].sources.get(energy) or 'predicted'})"
    # placed before the search, so that a target the cluster cannot place is refused before the wait
    targets = load_targets(args.target or ["cpu"], args) if args.verify else None
    tables, labels = open_tables(args.probs, members)
    reduced = candidates(tables, labels, n_candidates=args.candidates)
    problem = EnsembleProblem(reduced, member_ms, args.mode, min_members=args.min_members, max_members=args.max_members,
                              top5=args.top5, member_mj=member_mj)
    result = run_ensemble_search(problem, args.algorithm, args.pop_size, args.generations, args.seed)
    accuracy_source = f"measured: averaged class probabilities of {len(labels)} images ({args.probs})"
    settings = {"algorithm": args.algorithm, "seed": args.seed, "pop_size": args.pop_size, "generations": args.generations,
                "min_members": args.min_members, "max_members": args.max_members, "candidates": args.candidates}
    verify = None
    if args.verify:
        verify = _verify_ensembles(args, targets, front, column, verified, result, out)
    summary = write_ensembles(out, problem, result, members, source, accuracy_source, settings,
                              {"verify": verify} if verify else None, energy_source)
    lines = [f"{len(result.X)} ensembles on the front ({args.mode} latency) after {args.generations} generations in "
             f"{result.wall_s:.1f} s; hypervolume {result.hypervolume:.5g} vs {result.singles_hypervolume:.5g} for the "
             f"single subnets (reference point {np.round(result.reference_point, 4).tolist()})",
             f"  accuracy: {accuracy_source}; latency: {source}" + (f"; energy: sum over {energy_source}" if energy_source else ""),
             f"  errors are exact (the final {result.rescored} ensembles rescored from the full tables in "
             f"{result.rescore_s:.1f} s); the search's {args.candidates}-candidate estimate was off for "
             f"{result.estimate_off} of them (worst share of samples it left undecided: {result.worst_unsure:.2%})",
             f"  wrote {out / 'ensembles.csv'}, {out / 'summary.json'}, {out / 'ensembles.png'}"]
    if verify:
        s, a = verify["search_model"], verify["members_alone_model"]
        lines.append(f"  verified {verify['n']} ensembles on target {verify['target']} ({args.mode}, {verify['statistic']}, "
                     f"batch {verify['batch']}, measured now): search model MAPE {s['mape']:.1%}; {args.mode} model over "
                     f"members measured alone MAPE {a['mape']:.1%}; wrote {verify['file']}")
    emit(args, summary, lines)
    return 0


def _verify_ensembles(args, targets, front, column: str, verified, result, out: Path) -> dict:
    """Chosen ensembles measured on the targets, at the batch size of the member latencies: that of
    ``verified`` (the --measured verify.csv), else the one the search's summary.json records for ``column``."""
    from ofahw.ensemble.verify import verify_ensembles
    from ofahw.search.outputs import read_summary
    from ofahw.space import get_space

    configs = {m.config_hash: m.config for m in front.members}
    upstream = front.path.parent / "summary.json"
    summary = read_summary(upstream) if upstream.is_file() else None
    if args.space is None and summary is None:
        raise UserError("--verify needs --space (no summary.json beside the front names it)")
    space = get_space(args.space or summary.space)
    batch = verified.batch if verified else summary.batch_of(column) if summary else 1
    members = front.hashes
    picks = np.unique(np.linspace(0, len(result.X) - 1, min(args.verify_count, len(result.X))).round().astype(int))
    ensembles = [[members[j] for j in np.flatnonzero(result.X[i])] for i in picks]
    return verify_ensembles(space, configs, ensembles, result.F[picks, -1], args.mode, targets, out / "verify.csv", batch)
