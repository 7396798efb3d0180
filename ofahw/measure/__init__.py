"""Measurement: the protocol, the ``Target`` interface, target files, and measuring in rounds."""

from ofahw.export import Artifact
from ofahw.measure.config import list_targets, load_target
from ofahw.measure.kept import keep_rounds
from ofahw.measure.protocol import STATISTICS, Measurement, Protocol, best_round, run_protocol
from ofahw.measure.rounds import measure_in_rounds, measure_rounds, measure_sequence, measure_subnets, subnet_artifacts
from ofahw.measure.target import Target

__all__ = ["Artifact", "Measurement", "Protocol", "STATISTICS", "Target", "best_round", "keep_rounds", "list_targets",
           "load_target", "measure_in_rounds", "measure_rounds", "measure_sequence", "measure_subnets", "run_protocol",
           "subnet_artifacts"]
