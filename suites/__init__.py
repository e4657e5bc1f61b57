"""The suites users run against a server: ``conformance`` (nothing is broken) and ``chaos``
(something is). Installed, they are the package ``harness.suites``: ``redis-cluster-harness
run`` runs them, and so does ``pytest --pyargs harness.suites``."""
