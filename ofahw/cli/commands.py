"""One function per command: parse the arguments' values, call the library, print the result."""

from __future__ import annotations

from ofahw._io import refuse_overwriting
from ofahw.cli._args import parse_duration, parse_resolutions, read_config
from ofahw.cli.render import emit, progress_line
from ofahw.errors import UserError
from ofahw.fidelity import chosen_scores
from ofahw.lut.steadiness import Steadiness


def targets_list(args) -> int:
    from ofahw.measure import list_targets

    entries = list_targets()
    if args.ray is None:
        rows = [{"name": t.name, "kind": t.kind, "source": t.source} for t in entries]
        emit(args, {"targets": rows}, [f"{r['name']:<16} {r['kind']:<8} {r['source']}" for r in rows])
        return 0
    from ofahw.cluster import target_placements

    rows = target_placements(entries, args.ray)
    emit(args, {"cluster": args.ray, "targets": rows}, [f"{r['name']:<16} {r['kind']:<8} {_placement_text(r)}" for r in rows])
    return 0


def _placement_text(row: dict) -> str:
    if row["resources"] is None:
        return "no ray section: measured on the node ofahw runs on"
    if not row["nodes"]:
        return f"needs {row['resources']}: NO node of the cluster offers that"
    nodes = ", ".join(f"{n['host']} ({n['address']}, node {n['node_id'][:12]})" for n in row["nodes"])
    return f"needs {row['resources']}: placeable on {nodes}"


def targets_check(args) -> int:
    from ofahw.cli._targets import load_targets
    from ofahw.measure.check import check_target

    [target] = load_targets([args.target], args, args.accept_host_key)
    result = check_target(target, energy=args.energy)
    probe, meta, energy = result["probe"], result["metadata"], result["energy"]
    emit(args, result, [
        f"target {result['target']} ({result['kind']}, {result['source']}): OK",
        *([f"  measured on Ray node {node['host']} ({node['address']}, node id {node['node_id']})"]
          if (node := result.get("ray_node")) else []),
        *(f"  {k}: {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in meta.items()),
        f"  probe {probe['model']}: measured p10 {probe['p10']:.4f} ms, median {probe['median']:.4f} ms "
        f"over {probe['n']} runs ({'settled' if probe['settled'] else 'NOT settled'})",
        *([f"  probe energy: {energy['mj']:.4f} mJ per inference (idle {energy['idle_w']:.2f} W subtracted; {energy['sensor']}, "
           f"{energy['windows']} windows of {energy['window_s']:.1f} s, {'settled' if energy['settled'] else 'NOT settled'})"]
          if energy else []),
    ])
    return 0


def profile(args) -> int:
    from ofahw.cli._targets import load_targets
    from ofahw.lut.profile import profile_targets
    from ofahw.lut.transfer import parse_until
    from ofahw.space import get_space

    space = get_space(args.space)
    targets = load_targets(args.target, args, args.accept_host_key)
    outcomes = profile_targets(space, targets, args.out, parse_resolutions(args.resolutions, space), args.samples, args.seed,
                               parse_duration(args.budget) if args.budget is not None else None, fresh=args.fresh,
                               progress=not (args.no_progress or args.json), log=progress_line, batches=args.batch,
                               calibration=args.calib, sources=args.sources, until=parse_until(args.until), fast=args.fast,
                               energy=args.energy, probe=args.probe)
    payloads, lines, failures = [], [], []
    for target, outcome in outcomes:
        if isinstance(outcome, BaseException):
            failures.append(outcome)
            if len(outcomes) > 1:
                progress_line(f"ofahw: error: target {target.name}: {outcome}")
            lines.append(f"target {target.name}: FAILED: {outcome}")
            payloads.append({"target": target.name, "error": str(outcome)})
            continue
        payload, text = _profile_summary(outcome, target, space)
        payloads.append(payload)
        lines += text
    emit(args, payloads[0] if len(payloads) == 1 else {"results": payloads}, lines)
    if failures:
        if len(outcomes) == 1:
            raise failures[0]
        return 2 if all(isinstance(f, UserError) for f in failures) else 1
    return 0


def _profile_summary(result, target, space) -> tuple[dict, list[str]]:
    table = result.table
    report = table.report
    best = chosen_scores(report)
    raw = report["raw_block_sum_over_measured"]
    overhead = result.wall_s / result.timed_s if result.timed_s else None
    device = table.device
    payload = {"lut": str(result.path), "target": target.name, "space": space.name, "statistic": table.statistic,
               "deployment": table.deployment,
               "measured": result.measured, "reused": result.reused, "reused_rounds": result.reused_rounds,
               "unsettled": result.unsettled, "overhead": overhead,
               "wall_s": result.wall_s, "timed_s": result.timed_s, "report": report, "device": device}
    steadiness = Steadiness.of(result.table)
    payload["steadiness"] = steadiness.to_dict()
    payload["warnings"] = steadiness.warnings()
    payload["transfer"] = result.transfer
    used = report.get("unsettled_used")
    unsettled_note = f" (including {used} unsettled samples: too few settled)" if used else ""
    lines = [
        f"LUT written: {result.path} (+ {result.path.with_suffix('.json').name})",
        f"target {target.name}: {device.get('model') or device.get('cpu_model', '')}, {target.options}; space {space.name}; "
        f"resolutions {table.resolutions}; LUT statistic {table.statistic}",
        *([f"measured on Ray node {node['host']} ({node['address']}, node id {node['node_id']})"]
          if (node := device.get("ray_node")) else []),
        f"runtime {device.get('runtime')} {device.get('runtime_version')}, precision {table.precision}, batch {table.batch}"
        + (f"; models quantized: {table.quantization['weights']} weights, {table.quantization['calibration']}"
           if table.quantization else ""),
        (f"measured {result.measured} items this run ({result.reused} taken from the LUT, {result.reused_rounds} rounds "
         f"from the journal of an interrupted run) in {result.wall_s:.0f} s; timed inference {result.timed_s:.0f} s, "
         f"overhead {overhead:.2f}x (wall / timed)" if overhead is not None else
         f"nothing measured this run: all {result.reused} items were already in the LUT"),
        *([f"WARNING: {len(result.unsettled)} items never settled (kept, flagged settled=false): "
           f"{', '.join(result.unsettled[:5])}{' ...' if len(result.unsettled) > 5 else ''}"] if result.unsettled else []),
        *(f"WARNING: {w}" for w in payload["warnings"]),
        f"raw block sum / measured network ({table.statistic}, {raw['n']} networks): {raw['mean']:.3f} ± {raw['std']:.3f}",
        *(_transfer_lines(result.transfer, table) if result.transfer else []),
        *(_fast_lines(table.meta["fast"]) if "fast" in table.meta else []),
        f"predictor {report['chosen']} — {report['method']}{unsettled_note}:",
        f"  MAPE {best['mape'] * 100:.2f}%, within ±5% {best['within_5pct'] * 100:.1f}%, within ±10% "
        f"{best['within_10pct'] * 100:.1f}%, Kendall tau {best['kendall_tau']:.3f}, RMSE {best['rmse_ms']:.3f} ms",
    ]
    return payload, lines


def _transfer_lines(transfer: dict, table) -> list[str]:
    meta = table.meta["transfer"]
    taus = ", ".join(f"{path} {tau:.3f}" for path, tau in transfer["proxy_kendall_tau"].items())
    reached = {None: "", True: "; goal reached", False: "; goal NOT reached"}[transfer["reached"]]
    return [f"transferred from {transfer['source']} ({transfer['mapping']} mapping of its blocks, chosen by cross-validation) "
            f"with {meta['measured_networks']} networks and {meta.get('measured_blocks', 0)} probe blocks measured on the target "
            f"in {meta['device_s']['wall']:.0f} s of device time{reached}",
            f"  proxy check (Kendall tau of each source's prediction against the first measurements): {taus}",
            *(f"  WARNING: {p} is a poor proxy" for p in transfer["poor_proxies"])]


def _fast_lines(fast: dict) -> list[str]:
    return [f"fast profile: {fast['measured_blocks']} blocks measured, {fast['predicted_blocks']} predicted from them "
            f"({fast['block_model']}); {fast['measured_networks']} networks measured; {fast['device_s']['wall']:.0f} s of "
            "device time"]


def predict(args) -> int:
    from ofahw.cli._targets import placement, refuse_unused_ray
    from ofahw.predict.subnet import describe_subnet, measure_subnet

    refuse_unused_ray(args, args.measure, "--measure")
    info = describe_subnet(read_config(args.config), args.lut, args.accuracy, args.space, args.accuracy_resolutions,
                           batch=args.batch)
    lines = [f"subnet {info['config_hash']} of {info['space']}: {info['flops_m']:.1f} M MACs (counted), "
             f"{info['params_m']:.2f} M params (counted)"]
    if info["accuracy"]:
        lines.append(f"  top-1 {info['accuracy']['top1']:.2%} — {info['accuracy']['source']}")
    for lat in info["latencies"]:
        per_batch = f" per batch of {lat['batch']} ({lat['per_image_ms']:.3f} ms per image)" if lat["batch"] > 1 else ""
        lines.append(f"  {lat['statistic']} latency {lat['latency_ms']:.3f} ms{per_batch} on target {lat['target']} — {lat['source']}"
                     + (f" (cross-validated MAPE {lat['cv_mape'] * 100:.1f}%)" if lat["cv_mape"] is not None else ""))
        lines.append(f"    raw block sum from the LUT: {lat['block_sum_ms']:.3f} ms")
        if lat["energy"]:
            lines.append(f"  energy {lat['energy']['energy_mj']:.3f} mJ per inference on target {lat['target']} — "
                         f"{lat['energy']['source']}")
    if args.measure:
        if not args.lut:
            raise UserError("--measure needs --lut: the measurement is compared with that LUT's prediction")
        first = info["latencies"][0]
        stat = first["statistic"]
        measured = measure_subnet(first["lut"], info["config"], args.target, placement(args))
        info["measured"] = measured
        info["predicted_over_measured"] = first["latency_ms"] / measured[stat]
        lines.append(f"  measured now on target {measured['target']}: {stat} {measured[stat]:.3f} ms, median "
                     f"{measured['median']:.3f} ms, n={measured['n']} ({'settled' if measured['settled'] else 'NOT settled'}); "
                     f"predicted/measured = {info['predicted_over_measured']:.3f} (the {first['target']} LUT's prediction)")
    emit(args, info, lines)
    return 0


def export_model(args) -> int:
    from ofahw.cli._targets import placement, refuse_unused_ray
    from ofahw.deploy import deploy
    from ofahw.export.model import parse_formats

    refuse_unused_ray(args, args.measure, "--measure")
    model = deploy(args.space, args.out, read_config(args.config) if args.config else None, args.front, args.rank,
                   args.constraint or [], args.by, args.weights, args.download, args.calib, args.calib_images,
                   parse_formats(args.format), args.lut, args.accuracy, args.target, args.measure, log=progress_line,
                   place=placement(args), int8_images=args.int8_images)
    lines = [f"exported subnet {model['config_hash']} of {model['space']} ({model['selected']['from']}) to {args.out}:"]
    for name, info in model["files"].items():
        check = info.get("checked_against_torch")
        lines.append(f"  {info['file']} ({name})" + (f": max |ONNX - torch| {check['max_abs_diff']:.2e} on a random input"
                                                    if check else "")
                     + (f": calibrated on {info['calibration']}" if "calibration" in info else ""))
    bn = model["batchnorm"]
    lines.append(f"  BatchNorm recalibrated on {bn['images']} images of {bn['recalibrated_on']}" if bn else
                 "  BatchNorm NOT recalibrated (no --calib)")
    if model["accuracy"]:
        lines.append(f"  top-1 {model['accuracy']['top1']:.2%} — {model['accuracy']['source']}")
    for lat in model["latency_predicted"]:
        lines.append(f"  {lat['statistic']} latency {lat['latency_ms']:.3f} ms on target {lat['target']} — {lat['source']}")
    measured = model.get("measured")
    if measured:
        ratio = (f"; predicted/measured {measured['predicted_over_measured']:.3f} ({measured['compared_with']})"
                 if "predicted_over_measured" in measured else "")
        lines.append(f"  measured now on target {measured['target']}: {measured['statistic']} "
                     f"{measured[measured['statistic']]:.3f} ms, median "
                     f"{measured['median']:.3f} ms over {measured['n']} runs{ratio}")
    lines.append(f"  wrote {args.out}/model.json")
    emit(args, model, lines)
    return 0


def lut_export(args) -> int:
    from ofahw.lut import LatencyTable, lut_files
    from ofahw.lut.ofa_yaml import export_ofa_yaml

    refuse_overwriting([args.out], lut_files(args.lut))
    table = LatencyTable.read(args.lut)
    n = export_ofa_yaml(table, args.out)
    emit(args, {"out": args.out, "entries": n, "statistic": table.statistic},
         [f"wrote {n} block entries to {args.out} (OFA format; 'mean' holds the LUT's {table.statistic} in ms, "
          f"measured on target {table.target_name})"])
    return 0


def lut_import(args) -> int:
    from ofahw._io import check_writable
    from ofahw.lut import lut_files
    from ofahw.lut.ofa_yaml import import_ofa_yaml
    from ofahw.space import get_space

    if not args.out.endswith(".csv"):
        raise UserError(f"--out must be a .csv path (got {args.out})")
    check_writable(args.out)
    refuse_overwriting(lut_files(args.out), [args.yaml])
    table, skipped = import_ofa_yaml(args.yaml, get_space(args.space), args.target_name)
    table.write(args.out)
    emit(args, {"out": args.out, "entries": len(table.rows), "skipped": skipped},
         [f"wrote {len(table.rows)} block entries to {args.out} (imported, statistic 'mean'; no whole-network samples, "
          f"so predictions are the raw block sum){f'; skipped {skipped} entries not in the space' if skipped else ''}"])
    return 0
