"""Conformance: what a healthy Redis Cluster must do (slots, redirections, topology)."""
