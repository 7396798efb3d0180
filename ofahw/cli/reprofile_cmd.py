"""``ofahw reprofile``: check a LUT against its target now; exit status tells automation what happened
(``ofahw.reprofile.EXIT_STATUS``)."""

from __future__ import annotations

from ofahw.cli.render import emit
from ofahw.errors import UserError


def reprofile(args) -> int:
    from ofahw.cli._targets import load_targets
    from ofahw.reprofile import CONTENTION, EXIT_STATUS, OK, UNSTEADY, restore
    from ofahw.reprofile import reprofile as check

    if args.restore is not None:
        event = restore(args.lut, args.restore)
        emit(args, event, [f"{args.lut}: {event['event']} as version {event['version']}"])
        return 0
    if not args.target:
        raise UserError("reprofile needs --target (or --restore N)")
    [target] = load_targets([args.target], args)
    record = check(args.lut, target, confirm_after_s=args.confirm_after, act=not args.check_only,
                   progress=True)
    verdict = record["verdict"]
    lines = [f"{verdict} on target {record['target']} ({record['n']} sentinel subnets of {args.lut} re-measured now, "
             f"{record['statistic']}): median new/stored {record['median_ratio']:.3f}, spread {record['spread']:.1%}, "
             f"Kendall tau {record['kendall_tau']:.2f}; threshold ±{record['threshold']:.1%} (from the LUT's own "
             "repeat measurements)"]
    action = record.get("action")
    if action and action["event"] == "recalibrated":
        lines.append(f"  recalibrated: every entry scaled by {action['scale']:.3f}, predictor refitted; "
                     f"now version {action['version']} (the previous one is kept in the history folder)")
    elif action:
        lines.append(f"  re-profiled on target {record['target']} in {action['wall_s']:.0f} s: kept {action['kept_blocks']} blocks "
                     f"that moved with the median block (one new round within ±{action['block_threshold']:.1%}; rescaled by "
                     f"{action['kept_scale']:.3f}), re-measured "
                     f"{action['remeasured_blocks']} blocks and {action['networks']} networks, predictor refitted; now "
                     f"version {action['version']} (the previous one is kept in the history folder)")
    elif verdict == CONTENTION:
        lines.append(f"  contention: the sentinels' slow runs lie {record['tail']:.0%} above their fast ones now (median "
                     f"p90/p10 - 1; the LUT's networks showed {record['stored_tail']:.0%}, the limit is "
                     f"{record['tail_limit']:.0%}): another process shares the device. Its low percentiles hide that, so a "
                     "model deployed now runs slower than the LUT says; nothing was judged and the LUT is left as it is")
    elif verdict == UNSTEADY:
        lines.append(f"  the sentinels' own rounds spread by {record['round_spread']:.0%} now (above {record['steady_limit']:.0%}, "
                     "twice what the LUT's networks showed): the device is busy or unsteady, so nothing was judged and "
                     "the LUT is left as it is; check again later")
    elif verdict != OK:
        lines.append("  --check-only: the LUT is left as it is")
    if record.get("first_look") and verdict == OK:
        lines.append(f"  a first look saw {record['first_look']['verdict']} (median {record['first_look']['median_ratio']:.3f}); "
                     f"{args.confirm_after:g} s later it was gone: a slow spell, not drift")
    emit(args, record, lines)
    return EXIT_STATUS[verdict]


def report(args) -> int:
    from ofahw._io import refuse_overwriting
    from ofahw.lut import lut_files
    from ofahw.reprofile.report import drift_report

    out = args.out or str(args.lut).removesuffix(".csv") + "-drift.png"
    refuse_overwriting([out], lut_files(args.lut))
    summary = drift_report(args.lut, out)
    emit(args, summary, [f"{summary['checks']} checks of {args.lut} ({summary['verdicts']}); wrote {out}"])
    return 0


def schedule_install(args) -> int:
    from ofahw.cli._targets import load_targets
    from ofahw.reprofile import schedule

    if args.ray is not None:  # the cluster places the target now: a schedule that fails every time is refused here
        load_targets([args.target], args)
    entry = schedule.install(args.target, args.lut, args.every, args.via, args.ray, args.ray_wait)
    how = f"systemd user timer {entry['timer']}, OnCalendar={entry['on_calendar']}" if entry["via"] == "systemd" else "crontab"
    on = f" --ray {args.ray}" if args.ray is not None else ""
    emit(args, entry, [f"scheduled `ofahw reprofile --target {args.target}{on}` of {entry['lut']} at '{entry['schedule']}' "
                       f"({how}); log: {entry['log']}"])
    return 0


def schedule_list(args) -> int:
    from ofahw.reprofile import schedule

    found = schedule.entries()
    emit(args, {"entries": found}, [f"{e['schedule']}  {e['lut']}  ({e['via']})" for e in found]
         or ["no re-profiling is scheduled"])
    return 0


def schedule_remove(args) -> int:
    from ofahw.reprofile import schedule

    if not schedule.remove(args.lut):
        raise UserError(f"no scheduled re-profiling of {args.lut}")
    emit(args, {"removed": args.lut}, [f"removed the scheduled re-profiling of {args.lut}"])
    return 0
