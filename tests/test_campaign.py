import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from conftest import FAST, RESOLUTION, SPACE, fast_cpu_target, fast_target_file

from ofahw.cli.main import main
from ofahw.errors import Incomplete, LutError, UserError
from ofahw.export import ExportError
from ofahw.lut import LatencyTable
from ofahw.lut.campaign import Campaign, journal_path
from ofahw.measure import Measurement
from ofahw.measure.cpu import OnnxruntimeCpuTarget
from ofahw.space import get_space


class CountingTarget(OnnxruntimeCpuTarget):
    """The real CPU target, counting rounds; optionally interrupted (Ctrl-C) after some.

    Its rounds always count as settled (unless told otherwise) so that retries of noisy rounds do
    not change how many rounds a campaign asks for."""

    def __init__(self, interrupt_after=None, unsettle_networks=False, networks_never_settle=False, round_rule=FAST.round_rule):
        super().__init__("cpu", None, replace(FAST, round_rule=round_rule))
        self.calls, self.interrupt_after, self.unsettle_networks = 0, interrupt_after, unsettle_networks
        self.networks_never_settle = networks_never_settle
        self.quiet = {}  # the p10 given to each network's unsettled first try, by key

    def measure(self, artifact, protocol=None):
        if self.calls == self.interrupt_after:
            raise KeyboardInterrupt
        self.calls += 1
        m = super().measure(artifact, protocol)
        if self.unsettle_networks and artifact.input_shape[1] == 3 and artifact.key not in self.quiet and "-" not in artifact.key:
            # first try of each network: as if the machine were noisy, in a quiet moment cut by bursts
            self.quiet[artifact.key] = m.p10 / 100
            return replace(m, settled=False, p10=self.quiet[artifact.key])
        if self.networks_never_settle and artifact.input_shape[1] == 3 and "-" not in artifact.key:
            return replace(m, settled=False)
        return replace(m, settled=True)  # noise on this shared machine must not make the counts below vary


class DriftingTarget(OnnxruntimeCpuTarget):
    """Stand-in timings, no model run: each item reads a level of its own times the machine's
    slowness, which grows steadily over the campaign (+40% from its first round to its last), with
    0.5% noise; optionally interrupted (Ctrl-C) after some rounds, and resumed where it was."""

    def __init__(self, total, round_rule=FAST.round_rule, interrupt_after=None, start=0):
        super().__init__("cpu", None, replace(FAST, round_rule=round_rule))
        self.total, self.calls, self.interrupt_after = total, start, interrupt_after
        self.rng = np.random.default_rng(start)

    @staticmethod
    def level(key: str) -> float:
        return 0.5 + int(hashlib.sha256(key.encode()).hexdigest()[:6], 16) / 0xFFFFFF * 10

    def measure(self, artifact, protocol=None):
        if self.calls == self.interrupt_after:
            raise KeyboardInterrupt
        v = self.level(artifact.key) * (1 + 0.4 * self.calls / self.total) * float(np.exp(self.rng.normal(0, 0.005)))
        self.calls += 1
        return Measurement(min=v, p10=v, median=v, mean=v, std=0.0, p90=v, p99=v, n=20, cov=0.0, settled=True,
                           rel_se=0.001, warmup_runs=2, timed_s=0.02 * v, wall_s=0.025 * v)


def campaign(target, out, **kwargs):
    return Campaign(get_space(SPACE), target, out, [RESOLUTION], samples=kwargs.pop("samples", 6), progress=False,
                    log=lambda m: None, **kwargs)


def test_interrupted_profile_resumes_without_loss_or_duplicates(tmp_path):
    out = tmp_path / "cpu.csv"
    first = CountingTarget(interrupt_after=25)
    with pytest.raises(KeyboardInterrupt):
        campaign(first, out).run()
    assert not out.exists()
    journal = journal_path(out).read_text().splitlines()
    assert len(journal) == 1 + 25  # header + every finished round

    second = CountingTarget()
    result = campaign(second, out).run()
    n_items = len(get_space(SPACE).catalogue([RESOLUTION])) + 6
    assert second.calls == n_items * FAST.rounds - 25  # only what was missing
    assert result.reused_rounds == 25 and result.reused == 0  # said so: 25 rounds came from the journal
    assert result.table.meta["profiling"]["reused_rounds"] == 25  # and the LUT's timing record says it
    keys = [(r["kind"], r["key"]) for r in result.table.rows]
    assert len(keys) == len(set(keys)) == n_items
    assert all(r["rounds"] == FAST.rounds for r in result.table.rows)
    assert not journal_path(out).exists()

    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    third = CountingTarget()
    again = campaign(third, out).run()
    assert third.calls == 0 and again.reused == n_items
    assert LatencyTable.read(out).rows == result.table.rows
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest  # a complete LUT is left as it is


def test_interrupt_leaves_an_existing_lut_untouched(profiled_lut, tmp_path):
    out = tmp_path / "cpu.csv"
    shutil.copy(profiled_lut, out)
    shutil.copy(profiled_lut.with_suffix(".json"), out.with_suffix(".json"))
    before = out.read_bytes(), out.with_suffix(".json").read_bytes()
    target = CountingTarget(interrupt_after=3)
    with pytest.raises(KeyboardInterrupt):
        Campaign(get_space(SPACE), target, out, [RESOLUTION, 132], samples=8, progress=False, log=lambda m: None).run()
    assert (out.read_bytes(), out.with_suffix(".json").read_bytes()) == before
    assert len(journal_path(out).read_text().splitlines()) == 4


HOLD_LOCK = ("import sys, time\nfrom ofahw._io import writer_lock\nwith writer_lock(sys.argv[1], 'a campaign on target cpu'):\n"
             "    print('held', flush=True)\n    time.sleep(120)\n")


def test_a_second_writer_of_one_lut_is_refused_and_the_first_loses_nothing(tmp_path, capsys):
    """Two campaigns into one LUT at once would each plan and measure every item (slowing each other's
    measurements), and a --fresh one would clear the other's journal: the second is refused in one line."""
    out = tmp_path / "cpu.csv"
    with pytest.raises(KeyboardInterrupt):
        campaign(CountingTarget(interrupt_after=3), out).run()
    journal = journal_path(out).read_text()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=rf"^a campaign on target cpu \(pid {holder.pid}\) is writing .*cpu.csv now"):
            campaign(CountingTarget(), out, fresh=True).run()
        code = main(["profile", "--target", str(fast_target_file(tmp_path, "cpu")), "--space", SPACE, "--resolutions",
                     str(RESOLUTION), "--samples", "6", "--out", str(out), "--fresh"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.count("\n") == 0 and f"(pid {holder.pid}) is writing {out} now" in err
    finally:
        holder.kill()
        holder.wait()
    assert journal_path(out).read_text() == journal and not out.exists()
    # the holder died holding it: its lock file stays, its lock does not
    result = campaign(CountingTarget(), out).run()
    assert result.reused_rounds == 3 and out.exists() and not out.with_name("cpu.csv.lock").exists()


def test_budget_stops_with_progress_saved(tmp_path):
    out = tmp_path / "cpu.csv"
    with pytest.raises(Incomplete, match="rerun the same command to resume"):
        campaign(fast_cpu_target(), out, budget_s=0.0).run()
    assert json.loads(journal_path(out).read_text().splitlines()[0])["space"] == SPACE
    assert not out.exists()


def test_lut_of_other_settings_is_not_mixed(profiled_lut, tmp_path):
    out = tmp_path / "cpu.csv"
    shutil.copy(profiled_lut, out)
    shutil.copy(profiled_lut.with_suffix(".json"), out.with_suffix(".json"))
    with pytest.raises(LutError, match="profiled with other target"):
        campaign(fast_cpu_target(threads=2), out).run()
    # rows kept by another round rule (the fastest of their rounds, not the median) are not resumed either
    with pytest.raises(LutError, match="profiled with other round_rule"):
        campaign(OnnxruntimeCpuTarget("cpu", None, replace(FAST, round_rule="median")), out).run()


def test_a_machine_slowing_down_is_divided_out_across_an_interrupted_campaign(tmp_path):
    """Drift-corrected rows follow the items' own levels while the machine slows down over the
    whole campaign, interrupted halfway and resumed (the journal's rounds in their order, then the
    new ones); the fastest round of each item keeps its share of the slowdown."""
    total = (len(get_space(SPACE).catalogue([RESOLUTION])) + 6) * FAST.rounds
    ratios = {}
    for rule in ("drift-corrected", "fastest"):
        out = tmp_path / f"{rule}.csv"
        with pytest.raises(KeyboardInterrupt):
            campaign(DriftingTarget(total, rule, interrupt_after=total // 2), out).run()
        table = campaign(DriftingTarget(total, rule, start=total // 2), out).run().table
        ratios[rule] = np.array([r["value_ms"] / DriftingTarget.level(r["key"]) for r in table.rows])
        assert np.median([r["round_spread"] for r in table.rows]) > 0.1  # the rounds' spread as measured, not corrected
    corrected, fastest = ratios["drift-corrected"], ratios["fastest"]
    assert corrected.max() / corrected.min() < 1.03 < 1.15 < fastest.max() / fastest.min()
    assert 1.0 < np.median(corrected) < 1.1  # at the machine's speed in the quietest tenth of the campaign


def test_unsettled_rounds_are_measured_again_and_kept(tmp_path):
    target = CountingTarget(unsettle_networks=True, round_rule="fastest")
    result = campaign(target, tmp_path / "cpu.csv", samples=5).run()
    networks = result.table.networks
    assert len(networks) == 5
    assert all(r["settled"] for r in networks)
    assert all(r["rounds"] == FAST.rounds and r["attempts"] == FAST.rounds + 1 for r in networks)  # one retry each
    # the unsettled round was the fastest, and it is the one kept
    assert all(r["value_ms"] == pytest.approx(target.quiet[r["key"]]) and r["round_spread"] > 50 for r in networks)


def test_resume_counts_retried_rounds_as_measured_not_done(tmp_path):
    out = tmp_path / "cpu.csv"
    n_items = len(get_space(SPACE).catalogue([RESOLUTION])) + 5
    first = CountingTarget(unsettle_networks=True, interrupt_after=n_items * FAST.rounds + 2, round_rule="fastest")
    with pytest.raises(KeyboardInterrupt):
        campaign(first, out, samples=5).run()
    records = [json.loads(line) for line in journal_path(out).read_text().splitlines()[1:]]
    retried = [r for r in records if r["retried"]]
    assert len(retried) == 5 and len(records) == first.calls  # every round measured is journaled
    second = CountingTarget(round_rule="fastest")
    result = campaign(second, out, samples=5).run()
    assert second.calls == n_items * FAST.rounds - (len(records) - len(retried))
    assert all(r["rounds"] == FAST.rounds for r in result.table.rows)
    fastest = {r["key"]: r["m"]["p10"] for r in retried}
    assert all(r["p10_ms"] == pytest.approx(fastest[r["key"]]) for r in result.table.networks)  # retried rounds kept across the resume


def test_a_resumed_round_keeps_its_retries_counted(tmp_path):
    """Interrupted after each network's round was retried once: the resumed run goes on from the next try,
    so no round gets more tries than the protocol's retries allow, however often it is interrupted."""
    out = tmp_path / "cpu.csv"
    n_items = len(get_space(SPACE).catalogue([RESOLUTION])) + 5
    first = CountingTarget(networks_never_settle=True, interrupt_after=n_items * FAST.rounds + 2)
    with pytest.raises(KeyboardInterrupt):
        campaign(first, out, samples=5).run()
    result = campaign(CountingTarget(networks_never_settle=True), out, samples=5).run()
    tries = FAST.rounds * (FAST.retries + 1)
    assert [r["attempts"] for r in result.table.networks] == [tries] * 5
    assert all(r["rounds"] == FAST.rounds and not r["settled"] for r in result.table.networks)


def test_too_few_samples_and_bad_out(tmp_path):
    from ofahw.errors import UserError

    with pytest.raises(UserError, match="at least 5"):
        campaign(fast_cpu_target(), tmp_path / "a.csv", samples=2)
    with pytest.raises(UserError, match=r"\.csv"):
        campaign(fast_cpu_target(), tmp_path / "a.txt")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="not a writable directory"):
        campaign(fast_cpu_target(), blocker / "lut.csv")


def test_run_campaigns_measures_local_targets_one_after_another():
    import threading
    import time
    from types import SimpleNamespace

    from ofahw.lut.profile import run_campaigns

    running, overlaps, events = set(), [], []
    lock = threading.Lock()

    class Stand:
        def __init__(self, name, kind, fail=False, fail_ahead=False):
            self.target, self.fail = SimpleNamespace(name=name, kind=kind, on_this_machine=kind != "ssh"), fail
            self.fail_ahead = fail_ahead

        def make_ahead(self):
            events.append(("ahead", self.target.name))
            if self.fail_ahead:
                raise ExportError(f"{self.target.name} could not be exported")

        def run(self):
            with lock:
                events.append(("run", self.target.name))
                overlaps.append((self.target.name, set(running)))
                running.add(self.target.name)
            time.sleep(0.05)
            with lock:
                running.discard(self.target.name)
            if self.fail:
                raise LutError(f"{self.target.name} failed")
            return self.target.name

    campaigns = [Stand("a", "cpu"), Stand("b", "cuda", fail=True), Stand("board", "ssh"), Stand("c", "cpu"),
                 Stand("d", "cpu", fail_ahead=True)]
    outcomes = run_campaigns(campaigns)
    assert outcomes[0] == "a" and isinstance(outcomes[1], LutError) and outcomes[2:4] == ["board", "c"]
    assert isinstance(outcomes[4], ExportError) and ("run", "d") not in events  # reported; the others go on
    # with a remote target measuring beside the local ones, every model is made before anything measures
    assert [e for e, _ in events[:5]] == ["ahead"] * 5 and all(e == "run" for e, _ in events[5:])
    local = {"a", "b", "c"}
    assert all(not (seen & local) for name, seen in overlaps if name in local)  # two local targets never at once
