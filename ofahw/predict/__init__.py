"""Predictions over subnets: latency from a LUT (accuracy sources come with the search issue)."""

from ofahw.predict.latency import LutLatencyModel

__all__ = ["LutLatencyModel"]
