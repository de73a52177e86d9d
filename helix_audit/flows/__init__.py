"""The flow table: initiator, handshake outcome, conn_state, per-direction counters, ICMP errors."""

from .interface import FLOW_COLUMNS, PacketFlows
from .table import FlowTable

__all__ = ["FLOW_COLUMNS", "FlowTable", "PacketFlows"]
