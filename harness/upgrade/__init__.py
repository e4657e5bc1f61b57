"""Rolling-upgrade rehearsal: moving a running cluster from one server version to
another, step by step, under load, checked after every step.

- :mod:`~harness.upgrade.plan`: plans as data (``in-place``, ``replace`` and two unsafe
  ones), printable before they run;
- :mod:`~harness.upgrade.steps`: carrying out one step on the timeline;
- :mod:`~harness.upgrade.checks`: what is verified after each step;
- :mod:`~harness.upgrade.risks`: named risks read from the servers' logs, and what can be
  foreseen from the versions (RDB formats);
- :mod:`~harness.upgrade.rehearse`: a whole rehearsal and its verdict;
- :mod:`~harness.upgrade.endpoints`: what ``--upgrade-from`` / ``--upgrade-to`` name.
"""
