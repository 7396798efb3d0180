"""Lookup tables of one target: per-block entries, whole-network samples, fitted predictors, and
what each LUT's numbers are numbers of (its deployment)."""

from ofahw.lut.identity import batch_path, check_mixable, check_runtime, check_target, read_for_batch
from ofahw.lut.predictors import LutLatencyRegressor, PartFeatures, fit_predictor, stored_predictor
from ofahw.lut.table import COLUMNS, LatencyTable, json_path, lut_files

__all__ = ["COLUMNS", "LatencyTable", "LutLatencyRegressor", "PartFeatures", "batch_path", "check_mixable", "check_runtime",
           "check_target", "fit_predictor", "json_path", "lut_files", "read_for_batch", "stored_predictor"]
