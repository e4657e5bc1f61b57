"""Cluster operations as library calls: scaling out and in, moving slots, replica
migration, and a precise report of a slot's state when one of them goes wrong.

Every operation records itself on the cluster's timeline like a fault does (its action
just before, ``<action>-done`` or ``<action>-failed`` after) and in the nodes' logs. A
node added joins ``cluster.nodes``; a node removed leaves it for ``cluster.retired``.
Errors are :class:`MigrationError` carrying the :class:`SlotReport` of the slots involved.
"""

from harness.ops.members import (
    BLACKLIST_S,
    add_master,
    add_replica,
    drain,
    forget_node,
    remove_node,
    replica_map,
    wait_replica_migration,
)
from harness.ops.migrate import SlotMigration
from harness.ops.reshard import migrate_slots, plan_rebalance, rebalance
from harness.ops.slots import MigrationError, SlotReport, inspect_slots, slot_reports

__all__ = [
    "BLACKLIST_S",
    "MigrationError",
    "SlotMigration",
    "SlotReport",
    "add_master",
    "add_replica",
    "drain",
    "forget_node",
    "inspect_slots",
    "migrate_slots",
    "plan_rebalance",
    "rebalance",
    "remove_node",
    "replica_map",
    "slot_reports",
    "wait_replica_migration",
]
