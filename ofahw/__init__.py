"""ofahw: hardware-in-the-loop latency profiling and search for Once-for-All supernets."""

__version__ = "0.1.0"
