"""Measurement: the protocol, the ``Target`` interface, and target files."""

from ofahw.measure.config import list_targets, load_target
from ofahw.measure.protocol import STATISTICS, Measurement, Protocol, best_round, run_protocol
from ofahw.measure.target import Artifact, Target

__all__ = ["Artifact", "Measurement", "Protocol", "STATISTICS", "Target", "best_round", "list_targets", "load_target",
           "run_protocol"]
