"""Lookup tables of one target: per-block entries, whole-network samples, fitted predictors."""

from ofahw.lut.predictors import LutLatencyRegressor, PartFeatures, fit_predictor
from ofahw.lut.table import COLUMNS, LatencyTable, json_path, lut_files

__all__ = ["COLUMNS", "LatencyTable", "LutLatencyRegressor", "PartFeatures", "fit_predictor", "json_path", "lut_files"]
