"""Drift checks: the verdict logic on known ratios, drift injected for real (the runtime re-measured
without graph optimisations), recalibration as a new version, restore, and the lock."""

import fcntl
import json
import shutil

import numpy as np
import pytest
from conftest import FAST, fast_cpu_target

from ofahw.cli.main import main
from ofahw.errors import UserError
from ofahw.lut import LatencyTable
from ofahw.measure import Measurement
from ofahw.reprofile import NON_UNIFORM, OK, UNIFORM, history_dir, judge, reprofile, restore


def test_verdicts_on_known_ratios():
    stored = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert judge(stored, stored * 1.01, 0.05).verdict == OK
    assert judge(stored, stored * 1.2, 0.05).verdict == UNIFORM
    assert judge(stored, stored * np.array([1.0, 1.3, 1.0, 1.0, 1.0]), 0.05).verdict == NON_UNIFORM
    assert judge(stored, stored[::-1], 0.05).verdict == NON_UNIFORM


@pytest.fixture
def lut(tmp_path, profiled_lut):
    out = tmp_path / "cpu.csv"
    shutil.copy2(profiled_lut, out)
    shutil.copy2(profiled_lut.with_suffix(".json"), tmp_path / "cpu.json")
    return out


class Slower:
    """A deterministic stand-in for the CPU target (logic tests only): every sentinel reads as its
    stored latency times ``factor``, a uniform drift without the machine's noise."""

    def __new__(cls, lut, factor):
        stored = {r["key"]: r["value_ms"] for r in LatencyTable.read(lut).networks}
        target = fast_cpu_target()

        def measure(artifact, protocol=None):
            v = stored[artifact.key] * factor
            return Measurement(min=v, p10=v, median=v, mean=v, std=0.0, p90=v, p99=v, n=20, cov=0.0, settled=True,
                               rel_se=0.0, warmup_runs=0, timed_s=0.0, wall_s=0.0)

        target.measure = measure
        return target


def test_drift_injected_for_real_is_detected(lut):
    record = reprofile(lut, fast_cpu_target(graph_optimization="disable"), confirm_after_s=0)
    assert record["verdict"] != OK and record["median_ratio"] > 1 + record["threshold"]
    checks = (history_dir(lut) / "checks.jsonl").read_text().splitlines()
    assert json.loads(checks[-1])["verdict"] == record["verdict"] and record["first_look"]["verdict"] != OK


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


def test_cli_exit_codes_and_lock(lut, tmp_path, capsys):
    target = tmp_path / "slow.yaml"
    target.write_text(json.dumps({"kind": "cpu", "runtime": {"graph_optimization": "disable"}, "protocol": FAST.to_dict()}))
    code = main(["reprofile", "--lut", str(lut), "--target", str(target), "--confirm-after", "0", "--json"])
    record = json.loads(capsys.readouterr().out)
    assert code == {"uniform-drift": 3, "non-uniform-drift": 4}[record["verdict"]]
    with open(lut.with_name(lut.name + ".lock"), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(["reprofile", "--lut", str(lut), "--target", str(target)]) == 2
    assert "another reprofile" in capsys.readouterr().err


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
        assert main(["schedule", "install", "--target", "cpu", "--lut", str(lut), "--every", "hourly"]) == 0
        assert main(["schedule", "install", "--target", "cpu", "--lut", str(lut), "--every", "*/30 * * * *"]) == 0
        found = [e for e in schedule.entries() if e["lut"] == str(lut.resolve())]
        assert len(found) == 1 and found[0]["schedule"] == "*/30 * * * *"  # replaced, not doubled
        assert "reprofile --target cpu" in found[0]["command"] and ".reprofile.log" in found[0]["command"]
        assert main(["schedule", "list", "--json"]) == 0
        capsys.readouterr()
        assert main(["schedule", "install", "--target", "cpu", "--lut", str(lut), "--every", "sometimes"]) == 2
        assert main(["schedule", "remove", "--lut", str(lut)]) == 0
        assert not [e for e in schedule.entries() if e["lut"] == str(lut.resolve())]
        assert main(["schedule", "remove", "--lut", str(lut)]) == 2
    finally:
        schedule._write(before)
