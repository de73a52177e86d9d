"""Link, IP and transport headers for a whole batch at once (columns, not objects)."""

from .interface import PacketColumns, addr_to_str, decode_batch, str_to_addr

__all__ = ["PacketColumns", "addr_to_str", "decode_batch", "str_to_addr"]
