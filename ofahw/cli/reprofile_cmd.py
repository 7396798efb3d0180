"""``ofahw reprofile``: check a LUT against its target now; exit status tells automation what happened."""

from __future__ import annotations

from ofahw.cli.main import emit
from ofahw.errors import UserError

EXIT = {"no-drift": 0, "uniform-drift": 3, "non-uniform-drift": 4}


def reprofile(args) -> int:
    from ofahw.measure import load_target
    from ofahw.reprofile import reprofile as check
    from ofahw.reprofile import restore

    if args.restore is not None:
        event = restore(args.lut, args.restore)
        emit(args, event, [f"{args.lut}: {event['event']} as version {event['version']}"])
        return 0
    if not args.target:
        raise UserError("reprofile needs --target (or --restore N)")
    record = check(args.lut, load_target(args.target), confirm_after_s=args.confirm_after)
    verdict = record["verdict"]
    lines = [f"{verdict} on target {record['target']} ({record['n']} sentinel subnets of {args.lut} re-measured now, "
             f"{record['statistic']}): median new/stored {record['median_ratio']:.3f}, spread {record['spread']:.1%}, "
             f"Kendall tau {record['kendall_tau']:.2f}; threshold ±{record['threshold']:.1%} (from the LUT's own "
             "repeat measurements)"]
    if "action" in record:
        lines.append(f"  recalibrated: every entry scaled by {record['action']['scale']:.3f}, predictor refitted; "
                     f"now version {record['action']['version']} (the previous one is kept in the history folder)")
    elif verdict == "non-uniform-drift":
        lines.append(f"  the sentinels moved unevenly: re-profile with `ofahw profile --target {args.target} --out {args.lut} --fresh`")
    if record.get("first_look") and verdict == "no-drift":
        lines.append(f"  a first look saw {record['first_look']['verdict']} (median {record['first_look']['median_ratio']:.3f}); "
                     f"{args.confirm_after:g} s later it was gone: a slow spell, not drift")
    emit(args, record, lines)
    return EXIT[verdict]


def report(args) -> int:
    from ofahw.reprofile.report import drift_report

    out = args.out or str(args.lut).removesuffix(".csv") + "-drift.png"
    summary = drift_report(args.lut, out)
    emit(args, summary, [f"{summary['checks']} checks of {args.lut} ({summary['verdicts']}); wrote {out}"])
    return 0


def schedule_install(args) -> int:
    from ofahw.reprofile import schedule

    entry = schedule.install(args.target, args.lut, args.every)
    emit(args, entry, [f"scheduled `ofahw reprofile --target {args.target}` of {entry['lut']} at '{entry['schedule']}' "
                       f"(crontab); log: {entry['log']}"])
    return 0


def schedule_list(args) -> int:
    from ofahw.reprofile import schedule

    found = schedule.entries()
    emit(args, {"entries": found}, [f"{e['schedule']}  {e['lut']}" for e in found] or ["no re-profiling is scheduled"])
    return 0


def schedule_remove(args) -> int:
    from ofahw.reprofile import schedule

    if not schedule.remove(args.lut):
        raise UserError(f"no scheduled re-profiling of {args.lut}")
    emit(args, {"removed": args.lut}, [f"removed the scheduled re-profiling of {args.lut}"])
    return 0
