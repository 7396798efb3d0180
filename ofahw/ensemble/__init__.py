"""Ensembles of non-dominated subnets (the OFA³ idea): probability tables, vectorised selection
under a parallel (max) or serial (sum) latency model, outputs."""

from ofahw.ensemble.run import EnsembleResult, run_ensemble_search
from ofahw.ensemble.selection import MODES, EnsembleProblem, ensemble_accuracy, ensemble_latency
from ofahw.ensemble.tables import CandidateTables, candidates, open_tables

__all__ = ["MODES", "CandidateTables", "EnsembleProblem", "EnsembleResult", "candidates", "ensemble_accuracy",
           "ensemble_latency", "open_tables", "run_ensemble_search"]
