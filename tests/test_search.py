"""Searches on a real small LUT and a fitted accuracy predictor: every algorithm, budgets,
constraints, reproducibility, resume, outputs, verification, and bad input."""

import csv
import json

import numpy as np
import pytest
from conftest import FAST, write_yaml

from ofahw.cli.main import main
from ofahw.errors import ConfigError
from ofahw.predict import LutLatencyModel
from ofahw.predict.fitted_accuracy import FittedAccuracyPredictor
from ofahw.search import (
    ALGORITHMS,
    SearchSettings,
    SubnetProblem,
    accuracy_objective,
    cost_objectives,
    latency_objective,
    parse_constraint,
    run_search,
)
from ofahw.search.archive import non_dominated
from ofahw.search.policy_gradient import PolicyGradientSearch


@pytest.fixture(scope="module")
def accuracy_file(tmp_path_factory, profiled_lut):
    """A predictor fitted on a known function of the arch (no ImageNet here)."""
    model = LutLatencyModel.load(profiled_lut)
    space = model.space.with_resolutions(model.table.meta["resolutions"])
    rng = np.random.default_rng(0)
    X = space.repair(rng.integers(space.xl, space.xu + 1, size=(200, space.n_var)))
    score = (X * space.active_mask(X))[:, :-1].sum(axis=1)
    y = 0.65 + 0.1 * (score - score.min()) / np.ptp(score)
    path = tmp_path_factory.mktemp("acc") / "acc.json"
    FittedAccuracyPredictor.fit([space.decode(x) for x in X], y, space).save(path)
    return path


@pytest.fixture
def problem(profiled_lut, accuracy_file):
    model = LutLatencyModel.load(profiled_lut)
    space = model.space.with_resolutions(model.table.meta["resolutions"])
    acc = FittedAccuracyPredictor.load(accuracy_file, space)
    return SubnetProblem(space, [accuracy_objective(acc), latency_objective(model, space)], [])


def test_vectorised_latency_matches_the_per_config_prediction(profiled_lut):
    model = LutLatencyModel.load(profiled_lut)
    space = model.space.with_resolutions(model.table.meta["resolutions"])
    X = space.repair(np.random.default_rng(3).integers(space.xl, space.xu + 1, size=(40, space.n_var)))
    fast = model.predict_encoded(model.population(space), X)
    assert np.allclose(fast, model.predict([space.decode(x) for x in X]))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_returns_a_non_dominated_front(problem, algorithm):
    settings = SearchSettings(algorithm=algorithm, pop_size=20, generations=6, seed=1, n_limits=3,
                              latency_target=None)
    result = run_search(problem, settings, log=lambda m: None)
    assert len(result.X) >= 1 and result.hypervolume > 0
    assert result.n_evals <= settings.n_evals + settings.pop_size + 10  # the budget, give or take one batch
    _, F = non_dominated(result.X, result.F)
    assert len(F) == len(result.F)  # nothing in the front dominates another member
    assert np.allclose(result.values[:, 0], -result.F[:, 0])  # accuracy reported as accuracy
    assert [h["n_eval"] for h in result.history] == sorted(h["n_eval"] for h in result.history)


def test_same_seed_same_front_and_resume_continues_the_run(problem, tmp_path):
    settings = SearchSettings(algorithm="nsga2", pop_size=20, generations=20, seed=5)
    whole = run_search(problem, settings, log=lambda m: None)
    again = run_search(problem, settings, log=lambda m: None)
    assert np.array_equal(whole.X, again.X)

    checkpoint = tmp_path / "checkpoint.pkl"

    def stop_at_12(done, total):
        if done == 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_search(problem, settings, checkpoint=checkpoint, progress=stop_at_12, log=lambda m: None)
    messages = []
    resumed = run_search(problem, settings, checkpoint=checkpoint, log=messages.append)
    assert resumed.resumed_from == 12 and "resuming" in messages[0]
    assert np.array_equal(resumed.X, whole.X) and np.allclose(resumed.F, whole.F)
    other = SearchSettings(algorithm="nsga2", pop_size=20, generations=20, seed=6)
    fresh = run_search(problem, other, checkpoint=checkpoint, log=messages.append)
    assert fresh.resumed_from is None and "different search" in messages[-1]


def test_constraints_hold_on_the_front(problem):
    objective, constraint = parse_constraint("latency<=1e9", problem.objectives)
    limit = float(np.median(problem.values(problem.space.repair(
        np.random.default_rng(0).integers(problem.space.xl, problem.space.xu + 1, size=(200, problem.n_var))))[:, 1]))
    objective, constraint = parse_constraint(f"latency@cpu<={limit}", problem.objectives)
    constrained = SubnetProblem(problem.space, problem.objectives, [(objective, constraint)])
    result = run_search(constrained, SearchSettings(pop_size=20, generations=10), log=lambda m: None)
    assert len(result.X) and np.all(result.values[:, 1] <= limit)
    for bad in ("latency<20", "latency@jetson<=20", "speed<=3"):
        with pytest.raises(ConfigError):
            parse_constraint(bad, problem.objectives)


def test_three_objectives_with_flops(problem):
    objectives = problem.objectives + cost_objectives(problem.space, ["flops"])
    three = SubnetProblem(problem.space, objectives, [])
    result = run_search(three, SearchSettings(algorithm="nsga3", pop_size=20, generations=5), log=lambda m: None)
    assert result.F.shape[1] == 3 and np.all(result.values[:, 2] > 0)


def test_policy_gradient_learns_and_shrinks(problem):
    from ofahw.search.archive import Archive, reference_point

    rng = np.random.default_rng(0)
    archive = Archive(problem.n_var, problem.n_obj)
    pg = PolicyGradientSearch(problem, archive, reference_point(problem, rng), rng, reward="hypervolume", batch=32,
                              lr=0.5, shrink_after=5, shrink_below=0.2)
    choices = pg.allowed.sum()
    for _ in range(30):
        pg.step()
    assert pg.allowed.sum() < choices  # choices that fell away were dropped
    assert np.all(pg.allowed.sum(axis=1) >= 1)
    with pytest.raises(ConfigError, match="latency-target"):
        PolicyGradientSearch(problem, archive, reference_point(problem, rng), rng, reward="mnas")
    mnas = PolicyGradientSearch(problem, archive, reference_point(problem, rng), rng, reward="mnas", target=1.0, batch=16)
    mnas.step()


def test_cli_search_writes_the_run_and_verifies_it(tmp_path, profiled_lut, accuracy_file, capsys):
    target = write_yaml(tmp_path / "fast.yaml", json.dumps({"kind": "cpu", "protocol": FAST.to_dict()}))
    out = tmp_path / "runs" / "r1"
    code = main(["search", "--lut", str(profiled_lut), "--accuracy", str(accuracy_file), "--pop-size", "12",
                 "--generations", "4", "--out", str(out), "--verify", "--target", str(target), "--no-progress", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["hypervolume"] > 0 and len(summary["reference_point"]) == 2 and summary["n_nondominated"] >= 1
    for name in ("pareto.csv", "summary.json", "pareto.png", "hypervolume.png", "verify.csv"):
        assert (out / name).stat().st_size > 0
    rows = list(csv.DictReader((out / "pareto.csv").open()))
    assert rows[0]["top1_source"].startswith("predicted") and "measured on target cpu" in rows[0]["latency_ms@cpu_source"]
    verified = list(csv.DictReader((out / "verify.csv").open()))
    assert len(verified) == len(rows) and float(verified[0]["measured_p10_ms"]) > 0
    assert summary["verify"]["n"] == len(rows) and not (out / "checkpoint.pkl").exists()


@pytest.mark.parametrize("argv, message", [
    (["--constraint", "latency<<3"], "constraint"),
    (["--accuracy", "/nonexistent.json"], "is not a file"),
    (["--algorithm", "hill-climb"], "unknown algorithm"),
    (["--generations", "0"], "generations"),
])
def test_cli_search_bad_input(tmp_path, profiled_lut, accuracy_file, capsys, argv, message):
    base = ["search", "--lut", str(profiled_lut), "--accuracy", str(accuracy_file), "--out", str(tmp_path / "r"), "--no-progress"]
    args = base + argv
    if "--accuracy" in argv:
        args = ["search", "--lut", str(profiled_lut), "--out", str(tmp_path / "r"), "--no-progress"] + argv
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_two_devices_are_two_objectives(tmp_path, profiled_lut, accuracy_file, capsys):
    """A second LUT (the same measurements filed under another target name) adds a column, and
    constraints name their device."""
    from ofahw.lut import LatencyTable

    table = LatencyTable.read(profiled_lut)
    table.meta["target"] = {**table.meta["target"], "name": "board"}
    other = tmp_path / "board.csv"
    table.write(other)
    out = tmp_path / "two"
    assert main(["search", "--lut", str(profiled_lut), "--lut", str(other), "--accuracy", str(accuracy_file), "--pop-size",
                 "12", "--generations", "3", "--constraint", "latency@board<=1000", "--out", str(out), "--no-progress"]) == 0
    header = (out / "pareto.csv").read_text().splitlines()[0]
    assert "latency_ms@cpu" in header and "latency_ms@board" in header
    assert main(["search", "--lut", str(profiled_lut), "--lut", str(other), "--accuracy", str(accuracy_file), "--constraint",
                 "latency<=5", "--out", str(out), "--no-progress"]) == 2
    assert "latency@TARGET" in capsys.readouterr().err
