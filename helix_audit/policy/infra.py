"""Infrastructure traffic: what every host on a LAN does and no endpoint table is about.

Never reported above info: ICMPv6 neighbour/router discovery and MLD, IGMP, DHCP and DHCPv6,
mDNS, LLMNR, traffic to link-local multicast / broadcast, and DNS to the profile's resolvers
(without a profile: DNS to private or link-local resolvers). ARP never reaches the flow table.
All masks are vectorised over the flow DataFrame.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import numpy as np
import pandas as pd

from .flowcodes import FlowCodes
from .site import SiteProfile, parse_ip

ICMP6_INFRA_TYPES = (130, 131, 132, 133, 134, 135, 136, 137, 143)  # MLD, RS, RA, NS, NA, redirect, MLDv2
DHCP_PORTS = (67, 68, 546, 547)
MDNS_PORT = 5353
LLMNR_PORT = 5355
DNS_PORTS = (53, 853)  # DNS, DNS over TLS (TCP) / QUIC (UDP)


def dns_mask(flows: pd.DataFrame, codes: FlowCodes | None = None) -> np.ndarray:
    port = flows["resp_p"].to_numpy()
    if codes is not None:
        return codes.equals("transport", "udp", "tcp") & np.isin(port, DNS_PORTS)
    transport = flows["transport"].to_numpy()
    return np.isin(transport, ("udp", "tcp")) & np.isin(port, DNS_PORTS)


def infrastructure_mask(
    flows: pd.DataFrame,
    site: SiteProfile | None,
    codes: FlowCodes | None = None,
    dns: np.ndarray | None = None,
) -> np.ndarray:
    """``codes``: the table's :class:`FlowCodes`, ``dns``: its :func:`dns_mask` (each made here
    when not given)."""
    codes = codes if codes is not None else FlowCodes(flows)
    orig_p = flows["orig_p"].to_numpy()
    resp_p = flows["resp_p"].to_numpy()
    udp = codes.equals("transport", "udp")
    mask = codes.equals("transport", "icmp6") & np.isin(orig_p, ICMP6_INFRA_TYPES)
    mask |= codes.equals("transport", "ip-2")  # IGMP
    mask |= udp & (np.isin(resp_p, DHCP_PORTS) | np.isin(orig_p, DHCP_PORTS))
    mask |= udp & ((resp_p == MDNS_PORT) | (orig_p == MDNS_PORT))
    mask |= codes.equals("transport", "udp", "tcp") & ((resp_p == LLMNR_PORT) | (orig_p == LLMNR_PORT))
    mask |= _per_address(codes, _local_broadcast)
    if dns is None:
        dns = dns_mask(flows, codes)
    if dns.any():
        mask |= dns & _per_address(codes, lambda a: _known_resolver(a, site))
    return mask


def _per_address(codes: FlowCodes, test: Callable[[str], bool]) -> np.ndarray:
    """``test`` of each row's responder, asked once per distinct address."""
    addresses = codes.hosts()[2]
    hits = np.array([test(str(a)) for a in addresses] + [False], dtype=np.bool_)
    if not hits.any():
        return np.zeros(len(codes.flows), dtype=bool)
    return codes.per_host(hits, "resp")


_LOCAL_V4 = ipaddress.ip_network("224.0.0.0/24")
_BROADCAST_V4 = ipaddress.IPv4Address("255.255.255.255")
_LOCAL_V6 = ipaddress.ip_network("ff02::/16")


def _local_broadcast(address: str) -> bool:
    ip = parse_ip(address)
    if ip is None:
        return False
    if isinstance(ip, ipaddress.IPv4Address):
        return ip in _LOCAL_V4 or ip == _BROADCAST_V4
    return ip in _LOCAL_V6


def _known_resolver(address: str, site: SiteProfile | None) -> bool:
    if site is not None and site.dns_servers:
        return site.is_dns_server(address)
    ip = parse_ip(address)
    return ip is not None and (ip.is_private or ip.is_link_local or ip.is_loopback)
