"""Scheduled re-profiling: sentinel checks, drift verdicts, recalibration, versions and history."""

from ofahw.reprofile.drift import NON_UNIFORM, OK, UNIFORM, DriftVerdict, judge, noise_threshold
from ofahw.reprofile.run import history_dir, reprofile, restore

__all__ = ["NON_UNIFORM", "OK", "UNIFORM", "DriftVerdict", "history_dir", "judge", "noise_threshold", "reprofile", "restore"]
