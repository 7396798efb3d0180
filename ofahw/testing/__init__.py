"""Helpers for ofahw's own tests and benchmarks (a loopback SSH server); not used at run time."""
