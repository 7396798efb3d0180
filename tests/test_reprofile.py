"""Drift checks: the verdict logic on known ratios, drift injected for real (the runtime re-measured
without graph optimisations), recalibration as a new version, restore, and the lock."""

import dataclasses
import fcntl
import json
import os
import shutil
import time

import numpy as np
import pytest
from conftest import FAST, fast_cpu_target

from ofahw.cli.main import main
from ofahw.errors import UserError
from ofahw.lut import LatencyTable, fit_predictor
from ofahw.measure import Measurement
from ofahw.reprofile import (
    CONTENTION,
    EXIT_STATUS,
    NON_UNIFORM,
    OK,
    UNIFORM,
    UNSTEADY,
    history_dir,
    judge,
    reprofile,
    restore,
    steady_limit,
)
from ofahw.space import get_space


def test_verdicts_on_known_ratios():
    stored = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert judge(stored, stored * 1.01, 0.05).verdict == OK
    assert judge(stored, stored * 1.2, 0.05).verdict == UNIFORM
    assert judge(stored, stored * np.array([1.0, 1.3, 1.0, 1.0, 1.0]), 0.05).verdict == NON_UNIFORM
    assert judge(stored, stored[::-1], 0.05).verdict == NON_UNIFORM
    # a check whose own rounds spread beyond the limit judges nothing, however far the ratios moved
    assert judge(stored, stored * 1.2, 0.05, [0.3] * 5, limit=0.1).verdict == UNSTEADY
    assert judge(stored, stored * 1.2, 0.05, [0.02] * 5, limit=0.1).verdict == UNIFORM
    # slow runs far above the fast ones: contention, judged before anything else, whatever the ratios say
    assert judge(stored, stored * 1.02, 0.05, [0.3] * 5, 0.1, tails=[0.9] * 5, tail_limit=0.25).verdict == CONTENTION
    assert judge(stored, stored * 1.02, 0.05, [0.02] * 5, 0.1, tails=[0.08] * 5, tail_limit=0.25).verdict == OK


def slowed_options(options):
    """A target's session options as after a runtime update its settings do not show: graph optimisations off."""
    import onnxruntime as ort

    def slower(self):
        so = options(self)
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return so

    return slower


def runtime_slowed_underneath(target):
    import types

    target._session_options = types.MethodType(slowed_options(type(target)._session_options), target)
    return target


@pytest.fixture
def lut(tmp_path, profiled_lut):
    out = tmp_path / "cpu.csv"
    shutil.copy2(profiled_lut, out)
    shutil.copy2(profiled_lut.with_suffix(".json"), tmp_path / "cpu.json")
    return out


def stand_in(lut, factors: dict[str, float], default: float = 1.0):
    """A deterministic stand-in for the CPU target (logic tests only): every item of the LUT reads as
    its stored latency times its factor, a drift without the machine's noise."""
    stored = {r["key"]: r["value_ms"] for r in LatencyTable.read(lut).rows}
    target = fast_cpu_target()

    def measure(artifact, protocol=None):
        v = stored[artifact.key] * factors.get(artifact.key, default)
        return Measurement(min=v, p10=v, median=v, mean=v, std=0.0, p90=v, p99=v, n=20, cov=0.0, settled=True,
                           rel_se=0.0, warmup_runs=0, timed_s=0.001, wall_s=0.001)

    target.measure = measure
    return target


def Slower(lut, factor):  # noqa: N802 - reads as the stand-in target it builds
    return stand_in(lut, {}, factor)


def test_uneven_drift_reprofiles_reusing_the_blocks_that_still_agree(lut):
    before = LatencyTable.read(lut)
    slowed = sorted(before.blocks)[::7]
    sentinels = before.meta["sentinels"]
    uneven = {k: 1.6 for k in sentinels[::2]} | {k: 2.0 for k in slowed}
    checked = reprofile(lut, stand_in(lut, uneven), confirm_after_s=0, act=False)
    assert checked["verdict"] == NON_UNIFORM and "action" not in checked
    assert LatencyTable.read(lut).meta["version"] == 1  # a check only leaves the LUT as it is

    record = reprofile(lut, stand_in(lut, uneven), confirm_after_s=0)
    action = record["action"]
    assert action["event"] == "re-profiled" and action["version"] == 2
    assert action["remeasured_blocks"] == len(slowed) and action["kept_blocks"] == len(before.blocks) - len(slowed)
    after = LatencyTable.read(lut)
    assert after.meta["version"] == 2 and after.meta["history"][-1]["event"] == "re-profiled"
    for key, row in after.blocks.items():
        assert row["value_ms"] == pytest.approx(before.blocks[key]["value_ms"] * (2.0 if key in slowed else 1.0))
    assert len(after.networks) == len(before.networks) and after.meta["predictor"]
    assert (history_dir(lut) / "v1.csv").exists() and not list(history_dir(lut).glob("reprofile-*"))


def test_a_lut_of_another_round_rule_is_checked_and_reprofiled_by_it(lut):
    """A LUT measured while rounds were drift-corrected by default is judged and re-profiled by that
    rule, not refused as another rule or mixed with the fastest round the target keeps now."""
    table = LatencyTable.read(lut)
    table.meta["protocol"]["round_rule"] = "drift-corrected"
    table.write(lut)
    target = stand_in(lut, {k: 1.6 for k in table.meta["sentinels"][::2]} | {k: 2.0 for k in sorted(table.blocks)[::7]})
    record = reprofile(lut, target, confirm_after_s=0)
    assert record["verdict"] == NON_UNIFORM and record["action"]["event"] == "re-profiled"
    assert LatencyTable.read(lut).round_rule == "drift-corrected" and target.protocol.round_rule == "fastest"


def check_when_steady(lut, target, attempts: int = 5, pause_s: float = 3.0, **kwargs) -> dict:
    """``reprofile`` as a user would run it on a shared machine: again a little later, if a check found
    it too busy to judge (three quick attempts were once all judged too busy in a full suite run)."""
    for k in range(attempts):
        record = reprofile(lut, target, confirm_after_s=0, **kwargs)
        if record["verdict"] not in (UNSTEADY, CONTENTION):
            return record
        if k + 1 < attempts:
            time.sleep(pause_s)
    return record


def test_drift_injected_for_real_is_detected(lut):
    record = check_when_steady(lut, runtime_slowed_underneath(fast_cpu_target()))
    assert record["verdict"] in (UNIFORM, NON_UNIFORM), f"the machine stayed too busy to judge: {record['verdict']}"
    assert record["median_ratio"] > 1 + record["threshold"]
    checks = (history_dir(lut) / "checks.jsonl").read_text().splitlines()
    assert json.loads(checks[-1])["verdict"] == record["verdict"] and record["first_look"]["verdict"] != OK
    assert LatencyTable.read(lut).meta["version"] == 2 == record["action"]["version"]  # followed: rescaled or re-profiled


def test_an_unsteady_check_judges_nothing_and_leaves_the_lut(lut, capsys):
    table = LatencyTable.read(lut)
    target = stand_in(lut, {}, 1.5)
    sentinels, calls, slow, busier = len(table.meta["sentinels"]), [], target.measure, 1 + 2 * steady_limit(table)

    def busy(artifact, protocol=None):  # every other round over the sentinels runs slower, beyond the limit
        calls.append(1)
        m = slow(artifact, protocol)
        return replace_value(m, busier) if (len(calls) - 1) // sentinels % 2 else m

    target.measure = busy
    record = reprofile(lut, target, confirm_after_s=0)
    assert record["verdict"] == UNSTEADY and record["round_spread"] > record["steady_limit"] and "action" not in record
    assert LatencyTable.read(lut).meta["version"] == 1
    assert json.loads((history_dir(lut) / "checks.jsonl").read_text().splitlines()[-1])["verdict"] == UNSTEADY
    assert main(["report", "--lut", str(lut), "--out", str(lut.with_suffix(".png")), "--json"]) == 0  # plotted apart
    assert json.loads(capsys.readouterr().out)["verdicts"] == {UNSTEADY: 1}


def replace_value(m: Measurement, factor: float) -> Measurement:
    return dataclasses.replace(m, **{s: getattr(m, s) * factor for s in ("min", "p10", "median", "mean", "p90", "p99")})


def test_uniform_drift_recalibrates_as_a_new_version_and_restore_brings_it_back(lut):
    before = LatencyTable.read(lut)
    record = reprofile(lut, Slower(lut, 1.5), confirm_after_s=0)
    assert record["verdict"] == UNIFORM and record["action"]["version"] == 2
    after = LatencyTable.read(lut)
    scale = record["median_ratio"]
    assert after.meta["version"] == 2 and after.meta["history"][-1]["event"] == "recalibrated"
    assert np.isclose(after.rows[0]["value_ms"], before.rows[0]["value_ms"] * scale)
    assert (history_dir(lut) / "v1.csv").exists()
    event = restore(lut, 1)
    back = LatencyTable.read(lut)
    assert event["version"] == 3 and np.isclose(back.rows[0]["value_ms"], before.rows[0]["value_ms"])
    with pytest.raises(UserError, match="no version 7"):
        restore(lut, 7)


def test_recalibration_refits_the_predictor_among_the_candidates_it_had(lut):
    """A probed transfer's LUT keeps the calibrated sum alone; recalibrating must not bring the grouped model back."""
    table = LatencyTable.read(lut)
    table.set_predictor(fit_predictor(table, get_space(table.space_name), models=("calibrated-sum",), why="as a probed transfer"))
    table.write(lut)
    record = reprofile(lut, Slower(lut, 1.5), confirm_after_s=0)
    after = LatencyTable.read(lut)
    assert record["verdict"] == UNIFORM and after.meta["history"][-1]["event"] == "recalibrated"
    assert list(after.report["candidates"]) == ["calibrated-sum"] and after.report["candidates_why"] == "as a probed transfer"


def test_cli_exit_codes_and_lock(lut, tmp_path, capsys, monkeypatch):
    from ofahw.measure.cpu import OnnxruntimeCpuTarget

    monkeypatch.setattr(OnnxruntimeCpuTarget, "_session_options", slowed_options(OnnxruntimeCpuTarget._session_options))
    target = tmp_path / "slow.yaml"
    target.write_text(json.dumps({"kind": "cpu", "protocol": FAST.to_dict()}))
    code = main(["reprofile", "--lut", str(lut), "--target", str(target), "--confirm-after", "0", "--check-only", "--json"])
    record = json.loads(capsys.readouterr().out)
    assert code == EXIT_STATUS[record["verdict"]] and code in (3, 4, 5, 6)  # drift, or the shared machine busy just now
    lock = lut.with_name(lut.name + ".lock")
    assert not lock.exists()  # removed when the check is done
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(["reprofile", "--lut", str(lut), "--target", str(target)]) == 2
        assert lock.exists()  # the holder's, left alone
    assert f"another ofahw process is writing {lut} now" in capsys.readouterr().err


def test_a_settings_change_is_refused_not_judged(lut, tmp_path, capsys):
    target = tmp_path / "two.yaml"
    target.write_text(json.dumps({"kind": "cpu", "runtime": {"threads": 2}, "protocol": FAST.to_dict()}))
    assert main(["reprofile", "--lut", str(lut), "--target", str(target), "--confirm-after", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "threads 2 (LUT: 1)" in err and "not drift" in err
    assert not (history_dir(lut) / "checks.jsonl").exists() and not lut.with_name(lut.name + ".lock").exists()


def test_contention_is_seen_for_real_and_judges_nothing(lut, busy_core, capsys):
    target = lut.with_name("cpu-target.yaml")
    target.write_text(json.dumps({"kind": "cpu", "protocol": FAST.to_dict()}))
    code = main(["reprofile", "--lut", str(lut), "--target", str(target), "--confirm-after", "0", "--json"])
    record = json.loads(capsys.readouterr().out)
    assert record["verdict"] == CONTENTION and code == 6, record
    assert record["tail"] > record["tail_limit"] >= 0.25 and "action" not in record
    assert LatencyTable.read(lut).meta["version"] == 1
    assert json.loads((history_dir(lut) / "checks.jsonl").read_text().splitlines()[-1])["verdict"] == CONTENTION


def test_report_plots_the_history(lut, tmp_path, capsys):
    assert main(["report", "--lut", str(lut)]) == 2  # no checks yet
    assert "no checks yet" in capsys.readouterr().err
    reprofile(lut, Slower(lut, 1.0), confirm_after_s=0)
    reprofile(lut, Slower(lut, 1.3), confirm_after_s=0)
    assert main(["report", "--lut", str(lut), "--out", str(tmp_path / "drift.png"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["checks"] == 2 and summary["verdicts"] == {"no-drift": 1, "uniform-drift": 1}
    assert (tmp_path / "drift.png").stat().st_size > 0


@pytest.mark.skipif(shutil.which("crontab") is None, reason="cron is not installed")
def test_schedule_install_list_remove(lut, capsys):
    from ofahw.reprofile import schedule

    before = schedule._read()
    try:
        cron = ["--via", "cron"]
        assert main(["schedule", "install", "--target", "cpu", "--lut", str(lut), "--every", "hourly", *cron]) == 0
        assert main(["schedule", "install", "--target", "cpu", "--lut", str(lut), "--every", "*/30 * * * *", *cron]) == 0
        found = [e for e in schedule.entries() if e["lut"] == str(lut.resolve())]
        assert len(found) == 1 and found[0]["schedule"] == "*/30 * * * *"  # replaced, not doubled
        assert "reprofile --target cpu" in found[0]["command"] and ".reprofile.log" in found[0]["command"]
        assert main(["schedule", "list", "--json"]) == 0
        capsys.readouterr()
        assert main(["schedule", "install", "--target", "cpu", "--lut", str(lut), "--every", "sometimes", *cron]) == 2
        assert main(["schedule", "remove", "--lut", str(lut)]) == 0
        assert not [e for e in schedule.entries() if e["lut"] == str(lut.resolve())]
        assert main(["schedule", "remove", "--lut", str(lut)]) == 2
    finally:
        schedule._write(before)


def test_an_interrupted_reprofile_leaves_the_lut_intact_and_resumes(lut):
    before = lut.read_bytes()
    sentinels = LatencyTable.read(lut).meta["sentinels"]
    uneven = {k: 1.6 for k in sentinels[::2]}
    target = stand_in(lut, uneven)
    blocks, measure = set(LatencyTable.read(lut).blocks), target.measure
    seen, campaign = [], []

    def killed_midway(artifact, protocol=None):
        if len(seen) < len(blocks):  # the checks, then the quick pass over every block
            seen.extend([artifact.key] if artifact.key in blocks else [])
        else:  # the re-profile proper: killed at its 5th measurement
            campaign.append(artifact.key)
            if len(campaign) == 5:
                raise KeyboardInterrupt
        return measure(artifact, protocol)

    target.measure = killed_midway
    with pytest.raises(KeyboardInterrupt):
        reprofile(lut, target, confirm_after_s=0)
    assert lut.read_bytes() == before
    journal = next(history_dir(lut).glob("reprofile-v2.csv.journal"))
    done = len(journal.read_text().splitlines()) - 1
    assert done == 4  # the rounds finished before the interruption are kept

    record = reprofile(lut, stand_in(lut, uneven), confirm_after_s=0)
    assert record["action"]["event"] == "re-profiled" and LatencyTable.read(lut).meta["version"] == 2
    assert not list(history_dir(lut).glob("reprofile-*"))


def test_cron_expressions_become_systemd_calendars():
    from ofahw.errors import ConfigError
    from ofahw.reprofile.schedule import on_calendar

    assert on_calendar("17 3 * * *") == "*-*-* 3:17:00"
    assert on_calendar("*/30 * * * *") == "*-*-* *:0/30:00"
    assert on_calendar("0 9-17 * * 1-5") == "Mon..Fri *-*-* 9..17:0:00"
    assert on_calendar("5 0 1,15 * *") == "*-*-1,15 0:5:00"
    with pytest.raises(ConfigError, match="restrict only one"):
        on_calendar("0 0 1 * 1")


def test_schedule_as_a_systemd_user_timer(lut, tmp_path, monkeypatch, capsys):
    """Where systemd runs: unit files in the user's folder, enabled through `systemctl --user` (a
    recording stand-in here, as this machine does not boot with systemd)."""
    calls = tmp_path / "calls"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "systemctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    odd = lut.with_name("100% $HOME.csv")
    shutil.copy2(lut, odd)
    shutil.copy2(lut.with_suffix(".json"), odd.with_suffix(".json"))
    assert main(["schedule", "install", "--target", "cpu", "--lut", str(odd), "--every", "hourly", "--via", "systemd",
                 "--json"]) == 0
    entry = json.loads(capsys.readouterr().out)
    units = tmp_path / "config" / "systemd" / "user"
    service = (units / entry["timer"]).with_suffix(".service").read_text()
    assert "OnCalendar=*-*-* *:17:00" in (units / entry["timer"]).read_text()
    assert '"100%% $$HOME.csv"' in service.replace(str(odd.parent) + "/", "") and "Type=oneshot" in service
    assert f"--user enable --now {entry['timer']}" in calls.read_text()
    assert main(["schedule", "list", "--json"]) == 0
    assert [e["via"] for e in json.loads(capsys.readouterr().out)["entries"] if e["lut"] == str(odd.resolve())] == ["systemd"]
    assert main(["schedule", "remove", "--lut", str(odd)]) == 0
    assert not list(units.glob("ofahw-reprofile-*")) and f"--user disable --now {entry['timer']}" in calls.read_text()
