"""Transfer to a new device from existing LUTs: real CPU configurations at a small resolution."""

import json

import numpy as np
import pytest
from conftest import FAST, RESOLUTION, SPACE, copy_lut, fast_cpu_target, fast_target_file
from test_campaign import CountingTarget

from ofahw._io import writer_lock
from ofahw.cli.main import main
from ofahw.errors import LutError, UserError
from ofahw.lut import LatencyTable
from ofahw.lut.campaign import journal_path
from ofahw.lut.predictors import PartFeatures, fit_predictor
from ofahw.lut.probes import probe_blocks, probe_group, probe_size
from ofahw.lut.transfer import (
    GROUPINGS,
    MAPPINGS,
    PROBE_ROUNDS,
    PROBED,
    SCALED,
    TransferCampaign,
    design,
    fit_mapping,
    parse_until,
    probe_scales,
)
from ofahw.predict import LutLatencyModel
from ofahw.space import get_space, part_cost


def transfer(target, out, sources, samples=10, **kwargs):
    return TransferCampaign(get_space(SPACE), target, out, sources, samples=samples, progress=False,
                            log=kwargs.pop("log", lambda m: None), **kwargs)


def test_transfer_between_two_cpu_configurations(profiled_lut, tmp_path):
    target = fast_cpu_target(graph_optimization="basic")
    target.name = "cpu-basic"
    result = transfer(target, tmp_path / "cpu-basic.csv", [profiled_lut], samples=10).run()
    table = LatencyTable.read(tmp_path / "cpu-basic.csv")
    source = LatencyTable.read(profiled_lut)
    probes = probe_blocks(get_space(SPACE), [RESOLUTION])
    assert result.measured == 10 + len(probes) and len(table.networks) == 10 and set(table.blocks) == set(source.blocks)
    assert all(r["source"] == "measured on target cpu-basic" for r in table.networks)
    assert {k for k, r in table.blocks.items() if r["rounds"]} == set(probes)
    assert {table.blocks[k]["rounds"] for k in probes} == {PROBE_ROUNDS}
    assert all(table.blocks[k]["source"] == "measured on target cpu-basic" for k in probes)
    block = next(r for k, r in table.blocks.items() if k not in probes)
    assert block["source"].startswith("transferred: ") and str(profiled_lut) in block["source"] and block["rounds"] == 0
    meta = table.meta["transfer"]
    assert meta["sources"] == [str(profiled_lut)] and meta["measured_networks"] == 10 and meta["device_s"]["wall"] > 0
    assert meta["measured_blocks"] == len(probes) and str(profiled_lut) in meta["proxy_kendall_tau"]
    assert meta["mapping"] in PROBED and set(meta["mapping_cv"]["candidates"]) == set(PROBED)  # probes measured: probed ones
    assert list(table.report["candidates"]) == ["calibrated-sum"] and "probed" in table.report["candidates_why"]
    assert result.transfer["steps"][-1]["samples"] == 10 and len(table.sentinels) >= 3
    config = get_space(SPACE).sample(1, np.random.default_rng(9), [RESOLUTION])[0]
    assert LutLatencyModel.load(tmp_path / "cpu-basic.csv").predict([config])[0] > 0  # an ordinary LUT


def test_the_designed_set_is_deterministic_and_spread(profiled_lut):
    space, sources = get_space(SPACE), [(str(profiled_lut), LatencyTable.read(profiled_lut))]
    first, again = design(space, sources, 12, [RESOLUTION], seed=0), design(space, sources, 12, [RESOLUTION], seed=0)
    assert [space.config_hash(c) for c in first] == [space.config_hash(c) for c in again]
    assert len({space.config_hash(c) for c in first}) == 12
    other = design(space, sources, 12, [RESOLUTION], seed=1)
    assert [space.config_hash(c) for c in other] != [space.config_hash(c) for c in first]
    flops = np.array([space.flops(c) for c in first])
    assert flops[:4].max() / flops[:4].min() > 1.5  # the first few already span the range


def test_the_resolutions_take_turns_in_the_designed_set():
    """Strata of the whole latency range would crowd the smallest resolution; every prefix of the
    design holds each resolution once before any twice, and each resolution's picks spread over its
    own latency range."""
    space, rng = get_space(SPACE), np.random.default_rng(4)
    resolutions = [RESOLUTION, RESOLUTION + 32, RESOLUTION + 64]
    rows = [{"kind": "block", "key": key, "value_ms": float(rng.uniform(0.05, 0.5))} for key in space.catalogue(resolutions)]
    source = LatencyTable(rows, {"resolutions": resolutions})
    networks = [{"kind": "network", "key": space.config_hash(c), "config": c, "settled": True,
                 "value_ms": sum(source.blocks[p.key]["value_ms"] for p in space.parts(c))} for c in space.sample(10, rng, resolutions)]
    source = LatencyTable(rows + networks, {"resolutions": resolutions})
    source.set_predictor(fit_predictor(source, space))
    chosen = design(space, [("synthetic", source)], 12, resolutions, seed=0)
    assert len({space.config_hash(c) for c in chosen}) == 12
    for k in range(0, 12, 3):
        assert sorted(c["r"] for c in chosen[k:k + 3]) == resolutions
    for r in resolutions:
        flops = [space.flops(c) for c in chosen if c["r"] == r]
        assert max(flops) / min(flops) > 1.2


def test_probe_scales_follow_the_size_between_a_groups_ends():
    """Speed ratios that grow with the block's size, FLOPs and input (as OpenVINO's do): under ``probed``
    the blocks of a group take the ratio interpolated in log size between its probed ends, under
    ``probe-interpolated`` the latency so interpolated, under ``probed-blend`` their geometric mean; a
    group of one, its probe's."""
    space, resolutions = get_space(SPACE), [RESOLUTION, RESOLUTION + 32]
    parts = space.block_parts(resolutions)
    size = {k: part_cost(part)[0] + np.prod(part.input_shape) for k, (_, part) in parts.items()}
    rng = np.random.default_rng(2)
    own = {k: float(rng.uniform(0.5, 2.0)) for k in parts}  # the source's blocks, off any trend
    source = LatencyTable([{"kind": "block", "key": k, "value_ms": own[k]} for k in parts], {"resolutions": resolutions})
    ratio = {k: 0.5 * (size[k] / 1e6) ** 0.25 for k in parts}  # log ratio linear in log size
    probes = [{"key": k, "value_ms": ratio[k] * own[k]} for k in probe_blocks(space, resolutions)]
    found = probe_scales(source, space, probes)
    assert set(found) == set(PROBED) and all(set(scales) == set(parts) for scales in found.values())
    groups = {}
    for p in probes:
        groups.setdefault(probe_group(p["key"]), []).append(p)
    for k in parts:
        ends = sorted((np.log(size[p["key"]]), np.log(p["value_ms"])) for p in groups[probe_group(k)])
        level = np.exp(np.interp(np.log(size[k]), [x for x, _ in ends], [y for _, y in ends]))
        expected_ratio = ratio[k] if len(ends) == 2 else ratio[groups[probe_group(k)][0]["key"]]
        assert abs(found["probed"][k] / expected_ratio - 1) < 1e-9
        assert abs(found["probe-interpolated"][k] * own[k] / level - 1) < 1e-9
        assert abs(found["probed-blend"][k] * own[k] / np.sqrt(expected_ratio * own[k] * level) - 1) < 1e-9


def test_a_mapping_recovers_a_known_scaling_and_predicts_networks(profiled_lut):
    """Networks on a device twice as slow per block, with 0.05 ms more per part: the mapping finds it and predicts them."""
    space, source = get_space(SPACE), LatencyTable.read(profiled_lut)
    configs = space.sample(20, np.random.default_rng(3), [RESOLUTION])
    features = PartFeatures(source, space)(configs)
    y = 2.0 * features[:, :-1].sum(axis=1) + 0.05 * features[:, -1]
    mapping = fit_mapping(source, str(profiled_lut), space, configs, y)
    assert np.allclose(mapping.predict(source, space, configs), y, rtol=1e-3)
    assert all(abs(scale - 2.0) < 0.01 for scale in mapping.group_scale.values()) and abs(mapping.overhead_ms - 0.05) < 0.005


def test_a_grouped_mapping_finds_the_kernel_that_slowed_and_frees_only_the_groups_that_vary(profiled_lut):
    """7x7 blocks three times slower, every other part twice: a kernel grouping is chosen and finds it,
    and the parts every network has alike (not separable from the intercept) share one multiplier."""
    space, source = get_space(SPACE), LatencyTable.read(profiled_lut)
    configs = space.sample(30, np.random.default_rng(4), [RESOLUTION])
    y = np.array([sum((3.0 if "-kernel:7-" in p.key else 2.0) * source.blocks[p.key]["value_ms"] + 0.05
                      for p in space.parts(c)) for c in configs])
    mapping = fit_mapping(source, str(profiled_lut), space, configs, y)
    keys = list(source.blocks)
    seven, three = next(k for k in keys if "-kernel:7-" in k), next(k for k in keys if "-kernel:3-" in k)
    assert mapping.model in ("scaled-per-kernel", "scaled-per-kernel-activation")
    assert abs(mapping.scale_of(seven) - 3.0) < 0.01 and abs(mapping.scale_of(three) - 2.0) < 0.01
    assert np.allclose(mapping.predict(source, space, configs), y, rtol=1e-3)
    X = PartFeatures(source, space, labels=list(mapping.group_scale), grouping=GROUPINGS[mapping.model])(configs)
    fixed = [g for i, g in enumerate(mapping.group_scale) if np.ptp(X[:, i]) == 0]
    assert fixed and len({mapping.group_scale[g] for g in fixed}) == 1


def test_a_poor_proxy_is_reported(profiled_lut, tmp_path):
    scrambled = LatencyTable.read(profiled_lut)  # each block takes the latency of its opposite in rank
    blocks = sorted((r for r in scrambled.rows if r["kind"] == "block"), key=lambda r: r["value_ms"])
    for row, value in zip(blocks, [r["value_ms"] for r in blocks][::-1], strict=True):
        row["value_ms"] = value
    # its predictor follows its blocks: a grouped-linear one fitted on the true blocks (the profile's CV
    # may choose it) can weight the scrambled groups back into a good ranking
    scrambled.set_predictor(fit_predictor(scrambled, get_space(SPACE), models=("calibrated-sum",), why="test"))
    scrambled.write(tmp_path / "scrambled.csv")
    said = []
    transfer(fast_cpu_target(), tmp_path / "new.csv", [tmp_path / "scrambled.csv"], samples=10, log=said.append).run()
    tau = LatencyTable.read(tmp_path / "new.csv").meta["transfer"]["proxy_kendall_tau"][str(tmp_path / "scrambled.csv")]
    assert tau < 0.9 and any("is a poor proxy" in s for s in said) and any("no source is a good proxy" in s for s in said)


def test_sources_of_another_space_or_batch_are_refused(profiled_lut, tmp_path):
    with pytest.raises(LutError, match="is of space ofa-mbv3-w1.0, not ofa-mbv3-w1.2"):
        TransferCampaign(get_space("ofa-mbv3-w1.2"), fast_cpu_target(), tmp_path / "a.csv", [profiled_lut])
    with pytest.raises(LutError, match="was measured at batch 1, not 2"):
        transfer(fast_cpu_target(), tmp_path / "b.csv", [profiled_lut], batch=2)
    with pytest.raises(LutError, match="not profiled in every source"):
        transfer(fast_cpu_target(), tmp_path / "c.csv", [profiled_lut], resolutions=[160])
    with pytest.raises(UserError, match="--until must look like"):
        parse_until("mape<3")


def test_an_interrupted_transfer_resumes_without_measuring_twice(profiled_lut, tmp_path):
    out = tmp_path / "new.csv"
    first = CountingTarget(interrupt_after=7)
    with pytest.raises(KeyboardInterrupt):
        transfer(first, out, [profiled_lut], samples=6).run()
    assert journal_path(out).exists() and not out.exists()
    second = CountingTarget()
    result = transfer(second, out, [profiled_lut], samples=6).run()
    probes = len(probe_blocks(get_space(SPACE), [RESOLUTION]))
    assert first.calls + second.calls == 6 * FAST.network_rounds + probes * PROBE_ROUNDS and len(result.table.networks) == 6


def test_a_transfer_holds_its_lut_across_its_steps(profiled_lut, tmp_path):
    out, steps = tmp_path / "new.csv", []

    def on_step(result):
        with pytest.raises(UserError, match=r"^a campaign on target cpu \(pid \d+\) is writing .*new.csv now"):
            with writer_lock(out, "another writer"):
                pass
        steps.append(result.table.meta["transfer"]["measured_networks"])

    transfer(fast_cpu_target(), out, [profiled_lut], samples=10, step=5, on_step=on_step, probe=False).run()
    assert steps == [5, 10] and not out.with_name("new.csv.lock").exists()


def test_a_rerun_measures_the_probes_a_transfer_without_them_only_derived(profiled_lut, tmp_path):
    """A LUT's derived rows (never measured) are not taken as done: probing after a --no-probe transfer measures the probes."""
    out = tmp_path / "new.csv"
    transfer(CountingTarget(), out, [profiled_lut], samples=6, probe=False).run()
    assert LatencyTable.read(out).meta["transfer"]["measured_blocks"] == 0
    again = CountingTarget()
    result = transfer(again, out, [profiled_lut], samples=6).run()
    probes = len(probe_blocks(get_space(SPACE), [RESOLUTION]))
    assert again.calls == probes * PROBE_ROUNDS and result.table.meta["transfer"]["measured_blocks"] == probes


def test_cli_transfer(profiled_lut, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # every source counts as a good proxy: with 10 noisy measurements the rank check may call this
    # pair poor (then --until is not trusted and all 20 are measured), which is not what is tested here
    monkeypatch.setattr("ofahw.lut.transfer.GOOD_PROXY_TAU", -1.0)
    fast_target_file(tmp_path, "cpu2", "{threads: 1, graph_optimization: basic}")
    copy_lut(profiled_lut, tmp_path / "lut" / "cpu.csv")
    assert main(["profile", "--target", "cpu2", "--space", SPACE, "--from", "lut/cpu.csv", "--samples", "20",
                 "--until", "mape<=90%", "--no-progress", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["lut"] == "lut/cpu2.csv" and payload["transfer"]["reached"] is True
    probes = len(probe_blocks(get_space(SPACE), [RESOLUTION]))
    assert payload["transfer"]["steps"] == [payload["transfer"]["steps"][0]] and payload["measured"] == 10 + probes  # stopped early
    assert main(["profile", "--target", "cpu2", "--space", SPACE, "--from", "lut/cpu.csv", "--samples", "20",
                 "--until", "mape<=90%", "--no-progress", "--json"]) == 0  # run again: nothing to measure, the same mapping
    again = json.loads(capsys.readouterr().out)
    assert again["measured"] == 0 and again["transfer"]["mapping"] == payload["transfer"]["mapping"]
    assert main(["profile", "--target", "cpu2", "--space", SPACE, "--from", "lut/cpu.csv", "--energy", "--out", "lut/y.csv"]) == 2
    assert "does not combine with --from" in capsys.readouterr().err
    assert main(["profile", "--target", "cpu2", "--space", SPACE, "--until", "mape<=3%", "--out", "lut/x.csv"]) == 2
    assert "--until stops a transfer" in capsys.readouterr().err
    assert main(["profile", "--target", "cpu2", "--space", SPACE, "--no-probe", "--out", "lut/x.csv"]) == 2
    assert "--no-probe is for a transfer" in capsys.readouterr().err
    assert main(["profile", "--target", "cpu2", "--space", SPACE, "--from", "lut/cpu.csv", "--samples", "5", "--no-probe",
                 "--out", "lut/n.csv", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "with 5 networks and 0 probe blocks measured on the target" in out
    assert LatencyTable.read("lut/n.csv").meta["transfer"]["measured_blocks"] == 0


def test_fast_profile_measures_the_probe_blocks_and_interpolates_the_rest(tmp_path):
    from ofahw.lut.fast import FastCampaign

    space = get_space(SPACE)
    probes, parts = probe_blocks(space, [RESOLUTION]), space.block_parts([RESOLUTION])
    result = FastCampaign(space, fast_cpu_target(), tmp_path / "fast.csv", [RESOLUTION], samples=6, progress=False,
                          log=lambda m: None).run()
    table = result.table
    blocks = list(table.blocks.values())
    measured = [r for r in blocks if r["rounds"]]
    predicted = [r for r in blocks if not r["rounds"]]
    assert set(table.blocks) == set(space.block_parts([RESOLUTION]))  # every block has an entry
    assert {r["key"] for r in measured} == set(probes) and predicted
    assert all(r["source"].startswith("predicted: its probe group's smallest and largest block") for r in predicted)
    assert all(r["source"] == "measured on target cpu" for r in measured)
    for row in predicted:  # between its group's two ends, in log latency against log size
        ends = sorted((probe_size(parts[k][1]), table.blocks[k]["value_ms"]) for k in probes if probe_group(k) == probe_group(row["key"]))
        (s0, v0), (s1, v1) = ends
        at = np.log(probe_size(parts[row["key"]][1]) / s0) / np.log(s1 / s0)
        assert abs(np.log(row["value_ms"]) - ((1 - at) * np.log(v0) + at * np.log(v1))) < 1e-9
        assert row["flops_m"] > 0
    fast = table.meta["fast"]
    assert fast["measured_blocks"] == len(measured) and fast["predicted_blocks"] == len(predicted)
    assert fast["measured_networks"] == 6 and "interpolated in log size" in fast["block_model"] and table.predictor
    assert result.measured == len(measured) + 6  # only those were timed


def test_cli_fast_profile(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    fast_target_file(tmp_path, "cpu2", "{threads: 1}")
    assert main(["profile", "--target", "cpu2", "--space", SPACE, "--resolutions", str(RESOLUTION), "--fast", "--samples", "5",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    probes = len(probe_blocks(get_space(SPACE), [RESOLUTION]))
    blocks = len(get_space(SPACE).block_parts([RESOLUTION]))
    assert f"fast profile: {probes} blocks measured, {blocks - probes} predicted from them (per probe group" in out
    assert f"measured {probes + 5} items this run" in out
    assert main(["profile", "--target", "cpu2", "--space", SPACE, "--fast", "--from", "lut/cpu2.csv", "--out", "lut/x.csv"]) == 2
    assert "choose either" in capsys.readouterr().err


def test_cli_fast_profile_measures_fewer_networks_at_a_larger_batch(tmp_path, monkeypatch, capsys):
    from ofahw.lut.fast import fast_networks

    monkeypatch.chdir(tmp_path)
    fast_target_file(tmp_path, "cpu2", "{threads: 1}")
    assert main(["profile", "--target", "cpu2", "--space", SPACE, "--resolutions", str(RESOLUTION), "--fast", "--batch", "2",
                 "--no-progress"]) == 0
    n = fast_networks(2)
    assert n < fast_networks(1) == 30
    assert f"; {n} networks measured;" in capsys.readouterr().out
    table = LatencyTable.read(tmp_path / "lut" / "cpu2-b2.csv")
    assert table.batch == 2 and len(table.networks) == n == table.meta["fast"]["measured_networks"]


def test_parts_that_follow_the_resolution_alone_keep_the_common_multiplier():
    """Over two resolutions the stem and head groups vary, but only with the resolution: with the
    intercept they cannot be told apart, so they share one multiplier while the kernels are found."""
    space, rng = get_space(SPACE), np.random.default_rng(5)
    resolutions = [RESOLUTION, RESOLUTION + 32]
    rows = [{"kind": "block", "key": key, "value_ms": float(rng.uniform(0.05, 0.5))} for key in space.catalogue(resolutions)]
    source = LatencyTable(rows, {"resolutions": resolutions})
    configs = space.sample(40, rng, resolutions)
    y = np.array([sum((3.0 if "-kernel:7-" in p.key else 2.0) * source.blocks[p.key]["value_ms"] + 0.05
                      for p in space.parts(c)) for c in configs])
    mapping = fit_mapping(source, "synthetic", space, configs, y)
    seven = next(k for k in source.blocks if "-kernel:7-" in k)
    assert mapping.model in ("scaled-per-kernel", "scaled-per-kernel-activation") and abs(mapping.scale_of(seven) - 3.0) < 0.03
    heads = [g for g in mapping.group_scale if not g.startswith("expanded_conv")]
    assert len(heads) >= 3 and len({round(mapping.group_scale[g], 12) for g in heads}) == 1


def test_probe_groups_leave_out_size_and_expansion_and_their_ends_are_probed():
    space = get_space(SPACE)
    key = "expanded_conv-input:16x16x40-output:8x8x80-expand:240-kernel:5-stride:2-idskip:0-se:1-hs:1"
    assert probe_group(key) == "expanded_conv-input:40-output:80-kernel:5-stride:2-idskip:0-se:1-hs:1"
    assert probe_group("InputStem-input:224x224x3-output:56x56x64-mid:32-skip:1") == "InputStem-input:3-output:64-skip:1"
    resolutions = [RESOLUTION, RESOLUTION + 32]
    probes, parts = probe_blocks(space, resolutions), space.block_parts(resolutions)
    groups: dict[str, list[float]] = {}
    for k, (_, part) in parts.items():
        groups.setdefault(probe_group(k), []).append(part_cost(part)[0] + np.prod(part.input_shape))
    for group, sizes in groups.items():
        probed = sorted(part_cost(parts[k][1])[0] + np.prod(parts[k][1].input_shape) for k in probes if probe_group(k) == group)
        assert probed == ([min(sizes), max(sizes)] if len(sizes) >= 2 else sizes)
    assert list(probes) == list(probe_blocks(space, resolutions))  # deterministic


def test_the_probed_mapping_gives_each_group_its_measured_ratio():
    """Each probe group slowed by its own factor (1-4x), beyond what kernel groups can express, and the
    source's blocks carrying over as they are: with the probe blocks, ``probed`` is chosen, predicts
    the networks, and maps every block by its group's ratio."""
    space, rng = get_space(SPACE), np.random.default_rng(6)
    rows = [{"kind": "block", "key": key, "value_ms": float(rng.uniform(0.05, 0.5))} for key in space.catalogue([RESOLUTION])]
    source = LatencyTable(rows, {"resolutions": [RESOLUTION]})
    factor = {g: float(rng.uniform(1.0, 4.0)) for g in {probe_group(k) for k in source.blocks}}
    configs = space.sample(20, rng, [RESOLUTION])
    y = 1.1 * np.array([sum(factor[probe_group(p.key)] * source.blocks[p.key]["value_ms"] for p in space.parts(c)) for c in configs])
    probes = [{"key": k, "value_ms": factor[probe_group(k)] * source.blocks[k]["value_ms"]} for k in probe_blocks(space, [RESOLUTION])]
    mapping = fit_mapping(source, "synthetic", space, configs, y, probes=probe_scales(source, space, probes))
    assert mapping.model == "probed" and abs(mapping.gain - 1.1) < 1e-6
    assert set(mapping.cv["candidates"]) == set(PROBED)
    assert mapping.cv["candidates"]["probe-interpolated"]["mape"] > 0.01  # the source's blocks were what carried over
    assert np.allclose(mapping.predict(source, space, configs), y, rtol=1e-6)
    assert all(abs(mapping.block_value(k, r["value_ms"]) - factor[probe_group(k)] * r["value_ms"]) < 1e-9 for k, r in source.blocks.items())
    without = fit_mapping(source, "synthetic", space, configs, y)
    assert without.model in SCALED and without.cv["candidates"][without.model]["mape"] > 0.01
    candidates = without.cv["candidates"]  # no probes: the simplest within one standard error of the lowest CV MAPE
    lowest = min(candidates.values(), key=lambda c: c["mape"])
    assert without.model == next(m for m in MAPPINGS if m in candidates and candidates[m]["mape"] <= lowest["mape"] + lowest["mape_se"])


def test_a_source_whose_blocks_stray_from_the_trend_gives_way_to_the_probes():
    """A target whose blocks follow their probe group's trend in log size exactly, and a source whose
    blocks stray from it at random: ``probe-interpolated`` is chosen and predicts the networks, the
    source's blocks serving only as the unit."""
    space, rng = get_space(SPACE), np.random.default_rng(8)
    parts = space.block_parts([RESOLUTION])
    size = {k: part_cost(part)[0] + np.prod(part.input_shape) for k, (_, part) in parts.items()}
    slope = {g: float(rng.uniform(0.3, 0.9)) for g in {probe_group(k) for k in parts}}
    truth = {k: 0.02 * (size[k] / 1e5) ** slope[probe_group(k)] for k in parts}
    source = LatencyTable([{"kind": "block", "key": k, "value_ms": truth[k] * float(rng.uniform(0.5, 2.0))} for k in parts],
                          {"resolutions": [RESOLUTION]})
    configs = space.sample(20, rng, [RESOLUTION])
    y = 1.3 * np.array([sum(truth[p.key] for p in space.parts(c)) for c in configs]) + 0.2
    probes = [{"key": k, "value_ms": truth[k]} for k in probe_blocks(space, [RESOLUTION])]
    mapping = fit_mapping(source, "synthetic", space, configs, y, probes=probe_scales(source, space, probes))
    assert mapping.model == "probe-interpolated" and abs(mapping.gain - 1.3) < 1e-6 and abs(mapping.intercept_ms - 0.2) < 1e-6
    assert np.allclose(mapping.predict(source, space, configs), y, rtol=1e-6)
    assert all(abs(mapping.block_value(k, r["value_ms"]) / truth[k] - 1) < 1e-9 for k, r in source.blocks.items())
    assert mapping.cv["candidates"]["probed"]["mape"] > 0.01
