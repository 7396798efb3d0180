"""Scheduled re-profiling: sentinel checks, drift verdicts, recalibration, versions and history."""

from ofahw.reprofile.drift import NON_UNIFORM, OK, UNIFORM, UNSTEADY, DriftVerdict, judge, noise_threshold, steady_limit
from ofahw.reprofile.run import history_dir, reprofile, restore

__all__ = ["NON_UNIFORM", "OK", "UNIFORM", "UNSTEADY", "DriftVerdict", "history_dir", "judge", "noise_threshold", "reprofile",
           "restore", "steady_limit"]
