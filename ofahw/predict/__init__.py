"""Predictions over subnets: latency from a LUT, accuracy from an OFA predictor checkpoint or a
fitted predictor, and everything ofahw thinks of one subnet (``describe_subnet``)."""

from ofahw.predict.latency import LutLatencyModel

__all__ = ["LutLatencyModel"]
