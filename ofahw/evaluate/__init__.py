"""Top-1 of subnets with the supernet's pretrained weights on an image folder, BatchNorm
statistics recalibrated first (as OFA requires), and per-sample class probabilities kept as
float16 memory-mapped tables for the ensembles."""

from ofahw.evaluate.configs import read_configs
from ofahw.evaluate.run import Evaluation, EvaluationOutputs, Evaluator, evaluate_subnets, progress_text
from ofahw.images import ImageFolder, load_image
from ofahw.space import recalibrate_batchnorm

__all__ = ["Evaluation", "EvaluationOutputs", "Evaluator", "ImageFolder", "evaluate_subnets", "load_image", "progress_text",
           "read_configs", "recalibrate_batchnorm"]
