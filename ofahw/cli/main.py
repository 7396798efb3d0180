"""``ofahw`` command line: a thin layer that parses, calls the library, and prints."""

from __future__ import annotations

import argparse
import math
import sys

from ofahw import __version__
from ofahw._io import strict_json
from ofahw.errors import Incomplete, UserError

# Options whose values may start with '-' (a reference point of negated accuracy: -0.6,20), which
# argparse would otherwise take for an option; given as --opt VALUE they are rejoined as --opt=VALUE.
DASH_VALUES = ("--reference-point",)


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (and, with --json, one error object on stdout too)."""

    json_errors = False

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        if self.json_errors:
            print(strict_json({"error": f"{self.prog}: {message}", "exit_status": 2}))
        self.exit(2)


def main(argv: list[str] | None = None) -> int:
    argv = _join_dash_values(sys.argv[1:] if argv is None else list(argv))
    parser = build_parser()
    _Parser.json_errors = "--json" in argv
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except UserError as exc:
        return _fail(args, "error", str(exc), 2)
    except Incomplete as exc:
        return _fail(args, "stopped", str(exc), 1)
    except KeyboardInterrupt:
        return _fail(args, "interrupted", args.interrupted(args), 130)


def _fail(args, kind: str, message: str, status: int) -> int:
    """One line on stderr; with --json also one object on stdout, so a reader of stdout sees why."""
    print(f"ofahw: {kind}: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        print(strict_json({kind: message, "exit_status": status}))
    return status


def _join_dash_values(argv: list[str]) -> list[str]:
    out: list[str] = []
    it = iter(argv)
    for word in it:
        if word in DASH_VALUES:
            value = next(it, None)
            out.append(word if value is None else f"{word}={value}")
        else:
            out.append(word)
    return out


def _nothing_written(args) -> str:
    return "nothing was written"


def _measurements_saved(args) -> str:
    return "finished measurements are saved; rerun the same command to resume"


def build_parser() -> argparse.ArgumentParser:
    from ofahw.cli import commands

    parser = _Parser(prog="ofahw", description="Hardware-in-the-loop latency profiling for Once-for-All supernets.")
    parser.add_argument("--version", action="version", version=f"ofahw {__version__}")
    parser.set_defaults(interrupted=_nothing_written)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    targets = sub.add_parser("targets", help="list target devices, or check that one works")
    tsub = targets.add_subparsers(title="targets commands", metavar="ACTION")
    p = tsub.add_parser("list", help="targets found in ./targets, the user config folder, and the built-ins")
    _ray(p, "also show which nodes of the Ray cluster at ADDRESS can place each target (its file's ray resources)")
    _json(p)
    p.set_defaults(func=commands.targets_list)
    p = tsub.add_parser("check", help="open a target, time a tiny model on it, print its device facts")
    _target(p)
    p.add_argument("--energy", action="store_true", help="also measure the tiny model's energy per inference with the "
                   "target's power sensor (RAPL, NVML, Jetson rails); none readable: one line saying what was looked for")
    p.add_argument("--accept-host-key", action="store_true", help="accept an SSH target's unknown host key")
    _placed(p)
    _json(p)
    p.set_defaults(func=commands.targets_check)

    p = sub.add_parser("profile", help="measure targets into lookup tables and fit their latency predictors")
    p.add_argument("--target", required=True, action="append",
                   help="target name or YAML path; repeat to profile several devices at once (each measured serially)")
    p.add_argument("--accept-host-key", action="store_true",
                   help="accept an SSH target's unknown host key (saved to known_hosts, recorded in the LUT)")
    p.add_argument("--space", default="ofa-mbv3-w1.0", help="search space id (default: %(default)s)")
    p.add_argument("--resolutions", help="e.g. 160,176,192,208,224 or 160-224 (default: all of the space's)")
    p.add_argument("--samples", type=int, help="whole-network samples, stratified over size (default: 100; with --fast 30 at batch 1, "
                   "15 at larger batches; with --from at most 30, designed over the sources' latency range)")
    p.add_argument("--from", dest="sources", action="append", default=[], metavar="LUT",
                   help="transfer from this LUT (repeatable): measure only a designed set of whole subnets on the target")
    p.add_argument("--until", metavar="'mape<=3%%'", help="with --from: stop once the cross-validated MAPE reaches this")
    p.add_argument("--no-probe", dest="probe", action="store_false",
                   help="with --from: measure whole networks only, not one probe block per group of blocks (kind, channels, "
                   "kernel, stride) as well; for devices where every item is costly to build")
    _placed(p, "measure each target in an actor on the cluster node offering its file's ray resources (a target without "
               "them: this node; targets of one device take turns); the journal, LUT and predictor stay here",
            "progress saved")
    p.add_argument("--energy", action="store_true", help="also measure energy per inference of every item with the target's "
                   "power sensor (as `energy: true` in its file); none readable: one line saying what was looked for")
    p.add_argument("--fast", action="store_true", help="measure the smallest and largest block of each group of blocks "
                   "(kind, channels, kernel, stride) and 30 networks; predict the other blocks by interpolating between them")
    p.add_argument("--budget", help="wall-time limit such as 15m; a rerun resumes where it stopped")
    p.add_argument("--out", help="LUT path (default: lut/TARGET.csv; with several targets always lut/TARGET.csv)")
    p.add_argument("--seed", type=int, default=0, help="seed of the subnet sampling (default: %(default)s)")
    p.add_argument("--fresh", action="store_true", help="ignore (and at the end replace) an existing LUT at --out")
    p.add_argument("--batch", type=_int_list, default=[1], metavar="LIST",
                   help="batch sizes, e.g. 1,8: one LUT each, batch B > 1 beside the LUT as NAME-bB.csv (default: 1)")
    p.add_argument("--calib", metavar="DIR", help="image folder (DIR/<class>/<image>) that calibrates int8 targets' "
                   "quantization (default: random inputs; latency does not depend on the scales)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _json(p)
    p.set_defaults(func=commands.profile, interrupted=_measurements_saved)

    p = sub.add_parser("predict", help="what ofahw thinks of a subnet: top-1 and latency per LUT, with their sources")
    p.add_argument("--lut", action="append", default=[], help="lut/NAME.csv: latency on its target (repeatable)")
    p.add_argument("--accuracy", help="predicted top-1 from a fitted predictor (.json) or an OFA predictor checkpoint")
    _accuracy_resolutions(p)
    p.add_argument("--space", help="space id (default: the LUTs' or the fitted predictor's)")
    p.add_argument("--config", required=True, help="subnet config: a JSON object or a file holding one")
    _batch(p)
    p.add_argument("--measure", action="store_true", help="also measure the subnet now on the first LUT's target and print both")
    p.add_argument("--target", help="target for --measure (default: the first LUT's target)")
    _placed(p, "with --measure: " + PLACED)
    _json(p)
    p.set_defaults(func=commands.predict)

    from ofahw.cli import search_cmd

    p = sub.add_parser("search", help="search the accuracy / latency front of a space on one or more devices")
    p.add_argument("--lut", action="append", default=[], help="lut/NAME.csv: one latency objective per LUT (repeatable)")
    p.add_argument("--accuracy", help="a fitted predictor (.json) or an OFA predictor checkpoint (default: the space's "
                   "pretrained OFA predictor, downloaded on first use)")
    _accuracy_resolutions(p)
    p.add_argument("--space", help="space id (default: the LUTs' space)")
    _batch(p)
    p.add_argument("--objective", action="append", choices=["flops", "params", "energy"],
                   help="also minimise FLOPs, params, or energy per inference (each LUT profiled with --energy)")
    p.add_argument("--constraint", action="append", help="e.g. 'latency<=20', 'latency@jetson<=20', 'energy@jetson<=50', "
                   "'flops<=300'")
    p.add_argument("--algorithm", default="nsga2", help="nsga2, smsemoa, spea2, nsga3, agemoea, policy-gradient, "
                   "ofa-ea, random (default: %(default)s)")
    p.add_argument("--pop-size", type=int, default=100, help="population (batch, for policy-gradient) (default: %(default)s)")
    p.add_argument("--generations", type=int, default=100, help="generations (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mutation-rate", type=float, default=0.1, help="per-gene mutation probability (default: %(default)s)")
    p.add_argument("--crossover-prob", type=float, default=1.0, help="uniform crossover probability (default: %(default)s)")
    p.add_argument("--reward", default="tunas", choices=["tunas", "mnas", "hypervolume"],
                   help="policy-gradient reward (default: %(default)s)")
    p.add_argument("--latency-target", type=float, help="one latency target (ms) for the mnas / tunas rewards (default: "
                   "8 policies with targets spread over the latency range)")
    p.add_argument("--limits", type=int, default=9, help="latency limits of ofa-ea (default: %(default)s)")
    p.add_argument("--reference-point", type=_finite_list,
                   help="hypervolume reference point, one value per objective (minimised; accuracy negated)")
    p.add_argument("--out", required=True, help="runs/NAME folder")
    p.add_argument("--fresh", action="store_true", help="ignore a checkpoint of an interrupted run")
    p.add_argument("--verify", action="store_true", help="measure the front on the target afterwards")
    p.add_argument("--target", help="target for --verify (default: the first LUT's target)")
    _placed(p, "with --verify: " + PLACED, "the search's final checkpoint kept: a rerun only verifies")
    p.add_argument("--no-progress", action="store_true")
    _json(p)
    p.set_defaults(func=search_cmd.search, interrupted=search_cmd.interrupted)

    p = sub.add_parser("pick", help="the best member of a search's front under constraints (or the best per limit)")
    p.add_argument("--front", required=True, help="runs/NAME/pareto.csv")
    p.add_argument("--constraint", action="append", help="e.g. 'latency@jetson<=20', 'top1>=0.75' (repeatable)")
    p.add_argument("--by", help="what to optimise: top1 (default), latency@TARGET, flops or params")
    p.add_argument("--limits", type=_finite_list, metavar="LIST", help="the best under each latency limit, e.g. 10,15,20 (ms)")
    p.add_argument("--limits-on", metavar="latency@TARGET", help="the latency --limits bound (default: the front's only one)")
    p.add_argument("--verify", help="verify.csv whose measured latencies win over predicted ones (default: the one beside "
                   "the front, if any)")
    _json(p)
    p.set_defaults(func=search_cmd.pick)

    p = sub.add_parser("export", help="a deployable model of one subnet: its pretrained weights, BatchNorm recalibrated, "
                       "as ONNX (and int8 / TensorRT), with model.json")
    p.add_argument("--space", required=True, help="space id")
    p.add_argument("--config", help="subnet config: a JSON object or a file holding one")
    p.add_argument("--front", help="runs/NAME/pareto.csv to choose from (with --rank, or --constraint / --by)")
    p.add_argument("--rank", type=int, help="the front member of this rank (pareto.csv's rank column)")
    p.add_argument("--constraint", action="append", help="with --front: the best member meeting it, as `ofahw pick`")
    p.add_argument("--by", help="with --front: what the pick optimises (default: top1)")
    p.add_argument("--weights", help="supernet checkpoint (default: ofa's model zoo file from the cache)")
    p.add_argument("--download", action="store_true", help="download the zoo weights if they are not cached")
    p.add_argument("--calib", metavar="DIR", help="image folder to recalibrate BatchNorm on (and calibrate int8); "
                   "without it the supernet's statistics are kept and accuracy will be lower")
    p.add_argument("--calib-images", type=_positive_int, default=2000,
                   help="images of --calib that recalibrate BatchNorm (default: %(default)s)")
    p.add_argument("--int8-images", type=_positive_int,
                   help="images of --calib, taken evenly over it, that calibrate the int8 model's activation ranges (default: 500)")
    p.add_argument("--format", default="onnx", help="onnx, int8, tensorrt, comma-separated (default: %(default)s)")
    p.add_argument("--lut", action="append", default=[], help="lut/NAME.csv: its latency prediction goes into model.json")
    p.add_argument("--accuracy", help="an accuracy source whose prediction goes into model.json (default: the front's top1)")
    p.add_argument("--target", help="target for --measure (default: the first LUT's)")
    p.add_argument("--measure", action="store_true", help="time the exported model on the target; compare with its LUT")
    _placed(p, "with --measure: " + PLACED, "the exported model kept")
    p.add_argument("--out", required=True, help="models/NAME folder")
    _json(p)
    p.set_defaults(func=commands.export_model)

    p = sub.add_parser("evaluate", help="top-1 of subnets on an image folder (pretrained weights, BatchNorm recalibrated)")
    p.add_argument("--space", required=True, help="space id")
    p.add_argument("--configs", required=True, help="a config (JSON), a file of JSON lines, or a search's pareto.csv")
    p.add_argument("--data", required=True, help="image folder DIR/<class>/<image> (classes sorted as ImageNet's)")
    p.add_argument("--calib", help="image folder for BatchNorm recalibration (default: --data)")
    p.add_argument("--calib-images", type=_positive_int, default=2000, help="calibration images (default: %(default)s)")
    p.add_argument("--limit", type=int, help="evaluate on at most this many images, spread over the folder")
    p.add_argument("--weights", help="supernet checkpoint (default: ofa's model zoo file from the cache)")
    p.add_argument("--download", action="store_true", help="download the zoo weights if they are not cached")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", required=True, help="folder for accuracy.jsonl, probs/ and labels.npy")
    _ray(p, "evaluate on the Ray cluster at ADDRESS: workers (one per GPU, else --workers) load the supernet once and take "
            "one subnet at a time; --data, --calib and --weights must be at the same paths on every node")
    p.add_argument("--workers", type=int, help="with --ray on CPUs: workers to start (default: as many as the cluster's CPUs hold)")
    p.add_argument("--worker-cpus", type=int, default=1, help="with --ray on CPUs: CPUs (and torch threads) per worker "
                   "(default: %(default)s)")
    _json(p)
    p.set_defaults(func=search_cmd.evaluate, interrupted=lambda args: "finished subnets are saved in accuracy.jsonl "
                   "and probs/; rerun the same command to resume")

    p = sub.add_parser("ensemble", help="choose ensembles of front members (parallel or serial latency)")
    p.add_argument("--front", required=True, help="runs/NAME/pareto.csv")
    p.add_argument("--probs", required=True, help="the probs/ folder `ofahw evaluate` wrote for the front")
    p.add_argument("--mode", required=True, choices=["parallel", "serial"], help="latency = slowest member, or the sum")
    p.add_argument("--latency-column", help="pareto.csv column of member latency (default: the first latency_ms@...)")
    p.add_argument("--measured", help="use measured member latencies from this verify.csv")
    p.add_argument("--energy", action="store_true", help="also minimise energy per inference: the members' sum of the "
                   "front's energy column (a search with --objective energy)")
    p.add_argument("--energy-column", help="pareto.csv column of member energy (default: the first energy_mj@...)")
    p.add_argument("--algorithm", default="nsga2", choices=["nsga2", "smsemoa", "spea2"])
    p.add_argument("--pop-size", type=int, default=100)
    p.add_argument("--generations", type=int, default=100)
    p.add_argument("--min-members", type=int, default=2)
    p.add_argument("--max-members", type=int)
    p.add_argument("--top5", action="store_true", help="also minimise top-5 error")
    p.add_argument("--candidates", type=int, default=10, help="classes kept per sample (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verify", action="store_true", help="run chosen ensembles on the target and compare with the model")
    p.add_argument("--verify-count", type=int, default=8, help="ensembles to verify, spread over the front (default: %(default)s)")
    p.add_argument("--target", action="append", help="target for --verify (default: cpu); repeat it to spread each "
                   "ensemble's members over several devices (parallel mode)")
    p.add_argument("--space", help="space of the front's configs (needed with --verify)")
    _placed(p, "with --verify: " + PLACED + "; with several --target, each placed on its own")
    p.add_argument("--out", required=True, help="runs/NAME-ens folder")
    _json(p)
    p.set_defaults(func=search_cmd.ensemble)

    from ofahw.cli import reprofile_cmd

    p = sub.add_parser("reprofile", help="re-measure a LUT's sentinels, detect drift, and follow it (exit 0 no drift, "
                       "3 uniform drift: rescaled, 4 uneven drift: re-profiled reusing the blocks that still agree, 5 the "
                       "device too unsteady now to judge, 6 another process shares the device now: nothing changed)")
    p.add_argument("--lut", required=True, help="lut/NAME.csv")
    p.add_argument("--target", help="target the LUT was measured on")
    p.add_argument("--restore", type=int, metavar="VERSION", help="put an older version of the LUT back instead")
    p.add_argument("--confirm-after", type=_non_negative, default=60.0, metavar="SECONDS",
                   help="on drift, look again after this long and act only if it persists (default: %(default)s)")
    p.add_argument("--check-only", action="store_true", help="record the check and its verdict; leave the LUT as it is")
    _placed(p, stop="the LUT as it was")
    _json(p)
    p.set_defaults(func=reprofile_cmd.reprofile, interrupted=lambda args: "the LUT is as it was (a re-profile after "
                   "uneven drift keeps its finished measurements in the history folder; rerun to resume)")
    sched = sub.add_parser("schedule", help="re-profile a LUT periodically (systemd user timer or crontab)")
    ssub = sched.add_subparsers(title="schedule commands", metavar="ACTION")
    p = ssub.add_parser("install", help="add (or replace) the schedule of a LUT")
    p.add_argument("--target", required=True)
    p.add_argument("--lut", required=True)
    p.add_argument("--every", default="daily", help="hourly, daily, weekly or a cron expression (default: %(default)s)")
    p.add_argument("--via", default="auto", choices=["auto", "cron", "systemd"],
                   help="crontab or a systemd user timer (default: a timer where systemd runs, else cron)")
    _placed(p, "each scheduled check measures on the Ray cluster at ADDRESS, as `reprofile --ray` (for a target whose file "
               "has a ray section)", "the LUT as it was")
    _json(p)
    p.set_defaults(func=reprofile_cmd.schedule_install)
    p = ssub.add_parser("list", help="scheduled re-profiling")
    _json(p)
    p.set_defaults(func=reprofile_cmd.schedule_list)
    p = ssub.add_parser("remove", help="remove the schedule of a LUT")
    p.add_argument("--lut", required=True)
    _json(p)
    p.set_defaults(func=reprofile_cmd.schedule_remove)

    p = sub.add_parser("report", help="plot a LUT's drift history (PNG)")
    p.add_argument("--lut", required=True, help="lut/NAME.csv")
    p.add_argument("--out", help="PNG to write (default: lut/NAME-drift.png)")
    _json(p)
    p.set_defaults(func=reprofile_cmd.report)

    acc = sub.add_parser("accuracy", help="fit accuracy predictors from (config, top-1) data")
    asub = acc.add_subparsers(title="accuracy commands", metavar="ACTION")
    p = asub.add_parser("fit", help="fit and cross-validate a predictor; writes JSON")
    p.add_argument("--data", required=True, help="JSON lines or CSV of configs with 'top1' (fraction)")
    p.add_argument("--space", required=True, help="space id")
    p.add_argument("--out", required=True, help="predictor .json to write")
    p.add_argument("--seed", type=int, default=0)
    _json(p)
    p.set_defaults(func=search_cmd.accuracy_fit)

    lut = sub.add_parser("lut", help="convert LUTs to and from OFA's YAML format")
    lsub = lut.add_subparsers(title="lut commands", metavar="ACTION")
    p = lsub.add_parser("export", help="write a LUT's block entries as an OFA YAML latency table")
    p.add_argument("--lut", required=True, help="lut/NAME.csv")
    p.add_argument("--out", required=True, help="OFA YAML file to write")
    _json(p)
    p.set_defaults(func=commands.lut_export)
    p = lsub.add_parser("import", help="make an ofahw LUT from an OFA YAML latency table")
    p.add_argument("--yaml", required=True, help="OFA YAML latency table")
    p.add_argument("--space", default="ofa-mbv3-w1.0", help="search space id (default: %(default)s)")
    p.add_argument("--target-name", required=True, help="name of the device the table was measured on")
    p.add_argument("--out", required=True, help="lut/NAME.csv to write")
    _json(p)
    p.set_defaults(func=commands.lut_import)
    return parser


PLACED = ("measure the target in an actor on the cluster node offering its file's ray resources (a target without them: "
          "this node)")


def _placed(p, text: str = PLACED, stop: str = "nothing kept") -> None:
    """--ray and --ray-wait of a command that measures targets."""
    _ray(p, text)
    p.add_argument("--ray-wait", type=_non_negative, default=0.0, metavar="SECONDS",
                   help=f"with --ray: when a target's node is lost, wait this long for it to come back (default: stop at once, "
                   f"{stop})")


def _ray(p, text: str) -> None:
    p.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS", help=text + "; ADDRESS: auto (default: the cluster "
                   "`ray start` runs here), local (this machine alone, for this command), or HOST:PORT of the head node")


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one machine-readable JSON object")


def _batch(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch", type=int, metavar="B", help="latency of batches of B images: each --lut is replaced by its "
                   "batch-B LUT (NAME-bB.csv, from `ofahw profile --batch`) unless it holds batch B itself")


def _accuracy_resolutions(p: argparse.ArgumentParser) -> None:
    p.add_argument("--accuracy-resolutions", type=_int_list, metavar="LIST",
                   help="the resolutions an OFA predictor checkpoint was trained with, e.g. 128,160,192,224 (default: "
                   "inferred from its input width where one common list fits)")


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}") from None
    return values


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text!r}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be zero or more seconds, got {text!r}")
    return value


def _finite_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"every value must be a finite number, got {text!r}")
    return values


def _target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", required=True, help="target name (targets/NAME.yaml, user config, built-in) or a YAML path")


if __name__ == "__main__":
    sys.exit(main())
