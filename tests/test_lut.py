import json

import numpy as np
import pytest
import yaml
from sklearn.base import clone
from sklearn.model_selection import cross_val_score

from ofahw.errors import LutError
from ofahw.fidelity import latency_fidelity as fidelity
from ofahw.lut import LatencyTable, LutLatencyRegressor, PartFeatures, json_path
from ofahw.lut.ofa_yaml import export_ofa_yaml, import_ofa_yaml
from ofahw.lut.predictors import fit_predictor
from ofahw.predict import LutLatencyModel
from ofahw.space import get_space


def test_lut_files_round_trip(profiled_lut, tmp_path):
    table = LatencyTable.read(profiled_lut)
    copy_path = tmp_path / "copy.csv"
    table.write(copy_path)
    again = LatencyTable.read(copy_path)
    assert again.rows == table.rows
    assert again.meta["statistic"] == "p10" and again.meta["target"]["name"] == "cpu"


def test_profiled_lut_holds_what_the_design_asks(profiled_lut):
    table = LatencyTable.read(profiled_lut)
    space = get_space(table.meta["space"])
    assert set(table.blocks) == set(space.catalogue([128]))
    assert len(table.networks) == 8 and all(r["rounds"] == 2 for r in table.rows)
    for row in table.rows:
        assert row["min_ms"] <= row["p10_ms"] <= row["median_ms"] <= row["p90_ms"] <= row["p99_ms"]
        assert row["value_ms"] == row["p10_ms"] and row["source"] == "measured on target cpu"
    report = table.meta["report"]
    best = report["candidates"][report["chosen"]]
    assert set(best) >= {"rmse_ms", "mape", "within_5pct", "within_10pct", "kendall_tau"}
    assert table.meta["device"]["onnxruntime"] and len(table.meta["sentinels"]) >= 3
    assert json.loads(json_path(profiled_lut).read_text())["predictor"]["labels"]


@pytest.mark.parametrize("damage, message", [
    (lambda csv, js: csv.write_text(csv.read_text().replace(",p10,", ",p11,", 1)), "does not match its metadata"),
    (lambda csv, js: js.unlink(), "lacks its metadata"),
    (lambda csv, js: js.write_text("{"), "not valid JSON"),
    (lambda csv, js: csv.unlink(), "does not exist"),
])
def test_damaged_luts_are_refused(profiled_lut, tmp_path, damage, message):
    table = LatencyTable.read(profiled_lut)
    path = tmp_path / "lut.csv"
    table.write(path)
    damage(path, json_path(path))
    with pytest.raises(LutError, match=message):
        LatencyTable.read(path)


def test_malformed_row_is_reported_with_its_line(profiled_lut, tmp_path):
    table = LatencyTable.read(profiled_lut)
    table.rows[3]["kind"] = "layer"
    path = tmp_path / "bad.csv"
    table.write(path)
    with pytest.raises(LutError, match="line 5 is malformed"):
        LatencyTable.read(path)


def test_prediction_and_missing_resolution(profiled_lut):
    model = LutLatencyModel.load(profiled_lut)
    space = model.space
    configs = space.sample(5, np.random.default_rng(9), [128])
    predicted = model.predict(configs)
    assert predicted.shape == (5,) and np.all(predicted > 0)
    info = model.explain(configs[0])
    assert info["statistic"] == "p10" and "predicted" in info["source"] and info["latency_ms"] == pytest.approx(predicted[0])
    with pytest.raises(LutError, match="resolution 160 was not profiled"):
        model.predict([{**configs[0], "r": 160}])


def test_ofa_yaml_export_import_round_trip(profiled_lut, tmp_path):
    table = LatencyTable.read(profiled_lut)
    out = tmp_path / "ofa.yaml"
    n = export_ofa_yaml(table, out)
    data = yaml.safe_load(out.read_text())
    assert n == len(table.blocks) == len(data)
    key = next(iter(table.blocks))
    assert data[key]["mean"] == table.blocks[key]["value_ms"] and data[key]["ofahw_statistic"] == "p10"
    imported, skipped = import_ofa_yaml(out, get_space("ofa-mbv3-w1.0"), "phone")
    assert skipped == 0
    assert {k: r["value_ms"] for k, r in imported.blocks.items()} == {k: r["value_ms"] for k, r in table.blocks.items()}
    path = tmp_path / "phone.csv"
    imported.write(path)
    model = LutLatencyModel.load(path)
    config = get_space("ofa-mbv3-w1.0").sample(1, np.random.default_rng(0), [128])[0]
    assert model.predict([config])[0] == pytest.approx(model.block_sum([config])[0])  # uncalibrated: the raw sum


def test_ofa_yaml_import_errors(tmp_path):
    space = get_space("ofa-mbv3-w1.0")
    bad = tmp_path / "bad.yaml"
    for text, message in [("[1, 2]", "must map block keys"), ("a: {mean: 1}", "no stem entry"),
                          ("'Conv-input:128x128x3-output:64x64x16': {count: 3}", "lacks a numeric 'mean'"),
                          ("'Conv-input:128x128x3-output:64x64x99': {mean: 1}", "no entry .* belongs to space")]:
        bad.write_text(text)
        with pytest.raises(LutError, match=message):
            import_ofa_yaml(bad, space, "x")


def test_regressor_behaves_as_a_scikit_learn_estimator():
    rng = np.random.default_rng(0)
    X = np.c_[rng.uniform(1, 3, (40, 3)), rng.integers(10, 20, 40)]
    y = 1.2 * X[:, :3].sum(axis=1) + 0.3
    for model in ("calibrated-sum", "grouped-linear"):
        est = clone(LutLatencyRegressor(model=model))
        assert cross_val_score(est, X, y, cv=3).mean() > 0.99
        fitted = est.fit(X, y)
        restored = LutLatencyRegressor.from_dict(fitted.to_dict(), n_features=4)
        assert np.allclose(restored.predict(X), fitted.predict(X))
    with pytest.raises(Exception, match="not fitted"):
        LutLatencyRegressor().predict(X)


def test_resolution_sum_fits_one_line_per_resolution():
    """Blocks that over-count their networks by a share that differs with resolution (OpenVINO bf16
    at batch 8): one line over all resolutions misses, one line per resolution does not."""
    rng = np.random.default_rng(1)
    total, at_224 = rng.uniform(5, 40, 60), np.arange(60) % 2 == 1
    X = np.c_[0.6 * total, 0.4 * total, rng.integers(10, 20, 60), ~at_224, at_224].astype(float)
    y = np.where(at_224, 0.80 * total + 0.5, 0.95 * total - 2.0)
    est = clone(LutLatencyRegressor(model="resolution-sum", n_resolutions=2))
    assert cross_val_score(est, X, y, cv=3).mean() > 0.999
    fitted = est.fit(X, y)
    assert np.allclose(fitted.coef_, [0.95, 0.80, -2.0, 0.5]) and np.allclose(fitted.predict(X), y)
    restored = LutLatencyRegressor.from_dict(fitted.to_dict(), n_features=5, n_resolutions=2)
    assert np.allclose(restored.predict(X), y)
    pooled = LutLatencyRegressor(model="calibrated-sum", n_resolutions=2).fit(X, y)
    assert np.abs(pooled.predict(X) / y - 1).max() > 0.05
    lone = at_224 & (np.cumsum(at_224) > 1)  # one network at 224: that resolution takes the pooled line
    one = LutLatencyRegressor(model="resolution-sum", n_resolutions=2).fit(X[~lone], y[~lone])
    assert np.isclose(one.coef_[0], 0.95) and one.coef_[1] != 0.80
    with pytest.raises(LutError, match="do not fit"):
        LutLatencyRegressor.from_dict(fitted.to_dict(), n_features=5, n_resolutions=3)
    with pytest.raises(LutError, match="without the resolutions it was fitted at"):
        LutLatencyRegressor.from_dict(fitted.to_dict(), n_features=3)
    with pytest.raises(ValueError, match="resolution columns"):
        LutLatencyRegressor(model="resolution-sum").fit(X[:, :3], y)


def test_a_predictor_stored_before_the_resolution_columns_still_loads(profiled_lut, tmp_path):
    """The fitted predictor names its resolutions and is one of three candidates; a LUT whose
    predictor was stored without them (written before) predicts as it did."""
    table = LatencyTable.read(profiled_lut)
    space = get_space(table.meta["space"])
    params, report = fit_predictor(table, space)
    assert set(report["candidates"]) == {"calibrated-sum", "grouped-linear", "resolution-sum"}
    assert params["resolutions"] == [128] and params["model"] == report["chosen"]
    configs = [r["config"] for r in table.networks]
    for model in ("grouped-linear", "calibrated-sum"):
        old_features = PartFeatures(table, space)
        old = LutLatencyRegressor(model=model).fit(old_features(configs), np.array([r["value_ms"] for r in table.networks]))
        table.set_predictor(({**old.to_dict(), "labels": old_features.labels}, report))
        path = tmp_path / f"{model}.csv"
        table.write(path)
        assert np.allclose(LutLatencyModel.load(path).predict(configs), old.predict(old_features(configs)))


def test_fidelity_figures():
    figures = fidelity(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.04, 2.0, 3.3, 4.0]))
    assert figures["within_5pct"] == 0.75 and figures["within_10pct"] == 1.0 and figures["kendall_tau"] == 1.0


def test_predictor_falls_back_on_unsettled_samples_only_when_too_few_settled(profiled_lut):
    table = LatencyTable.read(profiled_lut)
    space = get_space(table.meta["space"])
    for row in table.networks:
        row["settled"] = True
    assert fit_predictor(table, space)[1]["unsettled_used"] == 0
    table.networks[0]["settled"] = False
    report = fit_predictor(table, space)[1]
    assert report["excluded_unsettled"] == 1 and report["unsettled_used"] == 0  # 7 of the 8 settled: enough
    for row in table.networks[1:]:
        row["settled"] = False  # a busy device: none settled, all are used, and the report says so
    report = fit_predictor(table, space)[1]
    assert report["excluded_unsettled"] == 0 and report["unsettled_used"] == len(table.networks)
    table.rows = [r for r in table.rows if r["kind"] == "block"] + table.networks[:4]
    with pytest.raises(LutError, match="at least 5 whole-network samples"):
        fit_predictor(table, space)


def test_predictor_candidates_can_be_narrowed_and_say_why(profiled_lut):
    table = LatencyTable.read(profiled_lut)
    space = get_space(table.meta["space"])
    params, report = fit_predictor(table, space, models=("calibrated-sum",), why="blocks already fitted")
    assert params["model"] == report["chosen"] == "calibrated-sum" and list(report["candidates"]) == ["calibrated-sum"]
    assert report["candidates_why"] == "blocks already fitted" and "candidates_why" not in fit_predictor(table, space)[1]
    with pytest.raises(ValueError, match="predictor models"):
        fit_predictor(table, space, models=("lasso",))
