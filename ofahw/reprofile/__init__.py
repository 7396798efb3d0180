"""Scheduled re-profiling: sentinel checks, drift verdicts, recalibration, versions and history."""

from ofahw.reprofile.drift import (
    CONTENTION,
    EXIT_STATUS,
    NON_UNIFORM,
    OK,
    UNIFORM,
    UNSTEADY,
    DriftVerdict,
    judge,
    noise_threshold,
    steady_limit,
    stored_tail,
    tail_limit,
)
from ofahw.reprofile.run import history_dir, reprofile, restore

__all__ = ["CONTENTION", "EXIT_STATUS", "NON_UNIFORM", "OK", "UNIFORM", "UNSTEADY", "DriftVerdict", "history_dir", "judge",
           "noise_threshold", "reprofile", "restore", "steady_limit", "stored_tail", "tail_limit"]
