"""SiteProfile.components_of (role assignment in bulk) gives what component_of gives per address."""

from __future__ import annotations

import random

import pytest

from helix_audit.policy.site import SiteProfile, parse_ip


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_components_of_equals_component_of(seed):
    import ipaddress

    rng = random.Random(seed)
    nets = [
        ipaddress.ip_network(n)
        for n in ("10.0.1.0/24", "10.0.0.0/16", "10.0.0.2/32", "fd00::/112", "0.0.0.0/0")
    ]
    site = SiteProfile(
        control_plane_addresses=tuple(rng.sample(nets, 2)), sandbox_addresses=tuple(rng.sample(nets, 2))
    )
    addresses = [
        "10.0.1.5",
        "10.0.0.2",
        "10.0.9.9",
        "192.0.2.1",
        "fd00::5",
        "fd01::5",
        "::ffff:10.0.1.7",
        "x",
        "",
    ]
    addresses += [f"10.0.{rng.randrange(3)}.{rng.randrange(256)}" for _ in range(200)]
    assert parse_ip("::ffff:10.0.1.7") == ipaddress.ip_address("10.0.1.7")
    assert site.components_of(addresses) == [site.component_of(a) for a in addresses]
    assert site.components_of([]) == []
