import itertools
from dataclasses import replace

import numpy as np
import pytest

from ofahw.measure import Measurement, Protocol, run_protocol
from ofahw.measure.protocol import best_round, relative_standard_error, summarise


def fake_clock(durations_ns):
    """(clock, run_once): each call of run_once advances the clock by the next duration."""
    now = [0]
    pending = iter(durations_ns)

    def run_once():
        now[0] += next(pending)

    return (lambda: now[0]), run_once


def test_statistics_of_known_samples():
    samples = np.arange(1, 101, dtype=float)  # 1..100 ms
    m = summarise(samples, Protocol(), warmup_runs=3, timed_s=5.05, wall_s=6.0)
    assert m.min == 1 and m.median == 50.5 and m.mean == 50.5 and m.n == 100
    assert m.p10 == pytest.approx(np.percentile(samples, 10))
    assert m.p90 == pytest.approx(np.percentile(samples, 90)) and m.p99 == pytest.approx(np.percentile(samples, 99))
    assert m.cov == pytest.approx(samples.std(ddof=1) / 50.5)
    assert Measurement.from_dict(m.to_dict()) == m


def test_steady_item_settles_at_the_minimum_and_noisy_one_runs_to_budget():
    steady, tick = fake_clock(itertools.repeat(1_000_000))  # 1 ms every run
    protocol = Protocol(warmup_runs=4, warmup_s=0.0, min_repeats=20, min_time_s=0.01, max_time_s=0.5)
    m = run_protocol(tick, protocol, clock=steady)
    assert m.settled and m.n == 20 and m.warmup_runs == 4 and m.p10 == pytest.approx(1.0)

    # A machine slowing down steadily: each batch of runs is slower, so the statistic never settles.
    noisy, tick = fake_clock(1_000_000 + 20_000 * k for k in itertools.count())
    m = run_protocol(tick, Protocol(warmup_runs=0, warmup_s=0.0, min_repeats=20, min_time_s=0.01, max_time_s=0.5), clock=noisy)
    assert not m.settled and m.timed_s >= 0.5 and m.rel_se > 0.01


def test_calls_running_the_model_several_times_give_per_run_samples():
    clock, tick = fake_clock(itertools.repeat(4_000_000))  # one call = 4 back-to-back runs of 1 ms
    m = run_protocol(tick, Protocol(warmup_runs=1, warmup_s=0.0, min_repeats=10, min_time_s=0.01, max_time_s=0.5),
                     clock=clock, per_call=4)
    assert m.settled and m.p10 == pytest.approx(1.0) and m.timed_s == pytest.approx(m.n * 0.004)


def test_a_slow_item_gets_its_minimum_count_past_the_budget():
    """A run longer than the budget allows for ``min_repeats`` (a network at batch 8): the round still
    gets its minimum count, so that its low percentile and its dispersion gate mean something."""
    clock, tick = fake_clock(itertools.repeat(100_000_000))  # 100 ms a run, budget 1 s
    protocol = Protocol(warmup_runs=1, warmup_s=0.0, min_repeats=20, min_time_s=0.15, max_time_s=1.0)
    m = run_protocol(tick, protocol, clock=clock)
    assert m.n == 20 and m.settled and m.timed_s == pytest.approx(2.0)
    # past the minimum count the budget ends the round as before
    noisy, tick = fake_clock(100_000_000 + 5_000_000 * k for k in itertools.count())
    m = run_protocol(tick, replace(protocol, min_repeats=10), clock=noisy)
    assert m.n == 10 and not m.settled


def test_the_budget_also_bounds_wall_time():
    frozen, tick = fake_clock(itertools.repeat(0))  # a device clock that never advances
    protocol = Protocol(warmup_runs=0, warmup_s=0.0, min_repeats=5, min_time_s=0.01, max_time_s=0.05, max_repeats=10**9)
    m = run_protocol(tick, protocol, clock=frozen)
    assert m.timed_s == 0 and 0.05 <= m.wall_s < 10  # stopped by the wall-time budget, not by the repeat cap


def test_relative_standard_error_sees_a_drift():
    flat = np.ones(100)
    drift = np.linspace(1, 2, 100)
    assert relative_standard_error(flat, "p10", 5) == 0
    assert relative_standard_error(drift, "p10", 5) > 0.05
    assert relative_standard_error(flat[:5], "p10", 5) == float("inf")


@pytest.mark.parametrize("bad", [{"statistic": "p50"}, {"gate": -1}, {"min_time_s": 2, "max_time_s": 1}, {"nope": 1}, {"rounds": 0}])
def test_bad_protocol_settings(bad):
    with pytest.raises((ValueError, TypeError)):
        Protocol.from_dict(bad)


def test_network_protocol_has_its_own_rounds_and_time():
    p = Protocol(min_time_s=0.1, network_min_time_s=0.5, max_time_s=0.3, rounds=3, network_rounds=5)
    net = p.for_network()
    assert net.min_time_s == 0.5 and net.max_time_s >= 0.5 and net.rounds == 5


class RoundsTarget:
    """A stand-in for an open target (logic only): item k reads k + 1 ms, every third call slower."""

    name = "stand-in"

    def __init__(self):
        self.calls = []

    def measure(self, artifact, protocol):
        self.calls.append(artifact.key)
        v = (int(artifact.key) + 1) * (1.5 if len(self.calls) % 3 == 0 else 1.0)
        return Measurement(min=v, p10=v, median=v, mean=v, std=0.0, p90=v, p99=v, n=10, cov=0.0, settled=True,
                           rel_se=0.0, warmup_runs=0, timed_s=0.0, wall_s=0.0)


def _round(p10: float, settled: bool) -> Measurement:
    return Measurement(min=p10, p10=p10, median=p10, mean=p10, std=0.0, p90=p10, p99=p10, n=20, cov=0.0, settled=settled,
                       rel_se=0.005 if settled else 0.05, warmup_runs=5, timed_s=0.3, wall_s=0.4)


def test_best_round_is_the_fastest_even_when_only_a_slower_round_settled():
    # A steady slow spell passes the gate, a quiet round cut by bursts does not: the quiet one is kept.
    kept = best_round([_round(10.0, False), _round(16.0, True), _round(11.0, False)], "p10")
    assert kept.p10 == 10.0 and kept.rel_se == 0.05 and kept.round_spread == pytest.approx(0.6)
    assert kept.settled  # the item settled: one of its rounds did
    assert not best_round([_round(10.0, False), _round(12.0, False)], "p10").settled


def test_median_round_rule_leaves_out_one_outlying_round_either_way():
    # A GPU's rare rounds that ran fast (or a slow one) are not kept; the spread still covers all rounds.
    kept = best_round([_round(10.0, True), _round(9.0, False), _round(10.2, True)], "p10", "median")
    assert kept.p10 == 10.0 and kept.round_spread == pytest.approx(10.2 / 9.0 - 1) and kept.settled
    assert best_round([_round(10.0, True), _round(15.0, True), _round(10.2, True)], "p10", "median").p10 == 10.2
    assert best_round([_round(11.0, True), _round(10.0, True)], "p10", "median").p10 == 10.0  # even count: faster middle
    with pytest.raises(ValueError, match="round rule must be one of"):
        best_round([_round(10.0, True)], "p10", "slowest")


def test_measure_in_rounds_keeps_the_round_its_protocols_rule_names():
    from ofahw.export import Artifact
    from ofahw.measure import measure_in_rounds

    artifacts = [Artifact(str(k), (1, 3, 8, 8), onnx=lambda: None) for k in range(4)]
    # RoundsTarget runs every third call 1.5x slower; in the seed-0 order items 1 and 2 have two slow
    # rounds of three and items 0 and 3 none: their median round is the slow value, the fastest the fast one.
    fastest = measure_in_rounds(RoundsTarget(), artifacts, Protocol(rounds=3, round_rule="fastest"), seed=0)
    median = measure_in_rounds(RoundsTarget(), artifacts, Protocol(rounds=3, round_rule="median"), seed=0)
    # too few items measured together to tell the machine's speed: drift-corrected keeps the median round
    corrected = measure_in_rounds(RoundsTarget(), artifacts, Protocol(rounds=3, round_rule="drift-corrected"), seed=0)
    assert [m.p10 for m in fastest] == [1.0, 2.0, 3.0, 4.0]
    assert [m.p10 for m in median] == [m.p10 for m in corrected] == [1.0, 3.0, 4.5, 4.0]
    assert [m.round_spread for m in median] == [m.round_spread for m in fastest] == [0.0, 0.5, 0.5, 0.0]


def test_measure_in_rounds_keeps_each_items_fastest_round_and_its_spread():
    from ofahw.export import Artifact
    from ofahw.measure import measure_in_rounds

    target = RoundsTarget()
    artifacts = [Artifact(str(k), (1, 3, 8, 8), onnx=lambda: None) for k in range(4)]
    kept = measure_in_rounds(target, artifacts, Protocol(rounds=3, round_rule="fastest"), seed=0)
    assert len(target.calls) == 12 and sorted(target.calls) == sorted([str(k) for k in range(4)] * 3)
    assert [m.p10 for m in kept] == [1.0, 2.0, 3.0, 4.0]  # the fastest round of each
    assert all(m.round_spread in (0.0, 0.5) for m in kept) and any(m.round_spread == 0.5 for m in kept)
    again = RoundsTarget()
    measure_in_rounds(again, artifacts, Protocol(rounds=3, round_rule="fastest"), seed=0)
    assert again.calls == target.calls  # the order of each round is seeded


def test_drift_correction_tells_the_speed_per_kind_of_item_where_a_slow_spell_weighs_unlike():
    """Blocks and networks measured interleaved while the machine slows steadily (+50% by the end) — a
    network by the whole of it, a block by a tenth as much (as a slow spell weighs on this VM): told
    by the items of its own kind, each network's corrected median sits at its own level; told by all
    items (mostly blocks), the networks keep much of the slowdown."""
    from ofahw.measure import keep_rounds

    rng = np.random.default_rng(0)
    levels = {("block", b): 0.1 + b / 20 for b in range(24)} | {("network", n): 3.0 + n / 2 for n in range(8)}
    items = list(levels)
    order = [items[i] for _ in range(5) for i in rng.permutation(len(items))]
    sequence = []
    for t, key in enumerate(order):
        slowdown = 0.5 * t / len(order) * (1.0 if key[0] == "network" else 0.1)
        sequence.append((key, _round(levels[key] * (1 + slowdown) * float(np.exp(rng.normal(0, 0.003))), True)))
    by_kind = keep_rounds(sequence, "p10", "drift-corrected", speed_group=lambda key: key[0])
    by_all = keep_rounds(sequence, "p10", "drift-corrected")

    def network_spread(kept):
        ratios = [kept[k].p10 / levels[k] for k in levels if k[0] == "network"]
        return max(ratios) / min(ratios) - 1

    assert network_spread(by_kind) < 0.02 < 0.05 < network_spread(by_all)  # 0.6% and 6.9% with this seed
