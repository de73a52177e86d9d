"""The flow table: initiator, handshake outcome, conn_state, per-direction counters, ICMP errors."""
