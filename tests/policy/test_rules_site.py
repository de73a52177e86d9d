"""Rules and site profile loading: the shipped rules, and invalid inputs with their exact messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from helix_audit.errors import RulesError, SiteError
from helix_audit.policy.rules import load_rules, validate_rules_file
from helix_audit.policy.ruletable import format_rules_table
from helix_audit.policy.site import load_site

REPO = Path(__file__).resolve().parents[2]
GOOD_RULE = """\
ruleset: lab
enabled_by_default: true
rules:
  - id: r1
    hostnames: [a.example]
    ports: [443]
    transport: tcp
    component: sandbox
    phase: runtime
    group: core
    purpose: p
    source: s
"""


def test_shipped_rules_are_valid_and_cover_every_documented_host():
    for name in ("helix.yaml", "upstream.yaml"):
        assert validate_rules_file(REPO / "rules" / name) == []
    ruleset = load_rules()
    page = REPO.parent / "shared" / "helix" / "network-requirements.md"
    hosts = {h for r in ruleset.rules if r.ruleset == "helix" for h in r.hostnames}
    if page.is_file():
        import re

        documented = set(re.findall(r"\b(?:[a-z0-9-]+\.)+(?:com|tech|org|xyz|io)\b", page.read_text()))
        documented -= {"app.helix.ml"}
        assert documented <= hosts
    assert {r.provider for r in ruleset.rules if r.condition} == {"openai", "anthropic", "together"}
    assert [len(f[1]) for f in ruleset.info.files] == [64, 64]
    table = format_rules_table(ruleset)
    assert table.splitlines()[0].split()[:3] == ["id", "component", "phase"]
    assert len(table.splitlines()) == len(ruleset.rules) + 2


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("ports: [443]", "ports: [0]", "r.yaml:6: rules[0].ports: expected a list of integers 1-65535"),
        ("ports: [443]", "ports: 443", "r.yaml:6: rules[0].ports: expected a list of integers 1-65535"),
        ("ports: [443]", "ports: ['443']", "r.yaml:6: rules[0].ports: expected a list of integers 1-65535"),
        ("transport: tcp", "transport: sctp", "r.yaml:7: rules[0].transport: expected one of: tcp, udp"),
        (
            "component: sandbox",
            "component: runner",
            "r.yaml:8: rules[0].component: expected one of: control_plane, sandbox, any",
        ),
        (
            "hostnames: [a.example]",
            "hostnames: ['a..example']",
            "r.yaml:5: rules[0].hostnames: expected a non-empty list of host names",
        ),
        (
            "hostnames: [a.example]",
            "hostnames: []",
            "r.yaml:5: rules[0].hostnames: expected a non-empty list of host names",
        ),
        (
            "    source: s\n",
            "    source: s\n    colour: red\n",
            "r.yaml:13: rules[0].colour: unknown key (expected one of: id, hostnames, ports, transport, "
            "component, "
            "phase, group, purpose, source, condition, provider, protocol, websocket_paths, note)",
        ),
        ("    purpose: p\n", "", "r.yaml:4: rules[0].purpose: required key is missing"),
        ("id: r1", "id: R 1", "r.yaml:4: rules[0].id: expected lower-case letters, digits and '-'"),
        (
            "enabled_by_default: true",
            "enabled_by_default: maybe",
            "r.yaml:2: enabled_by_default: expected true or false",
        ),
        (
            "    group: core\n",
            "    group: core\n    condition: if configured\n",
            "r.yaml:4: rules[0]: condition and provider go together (an 'if configured' row)",
        ),
    ],
)
def test_rule_validation_messages(tmp_path, old, new, message):
    path = tmp_path / "r.yaml"
    assert old in GOOD_RULE
    path.write_text(GOOD_RULE.replace(old, new, 1))
    errors = [e.replace(str(tmp_path) + "/", "") for e in validate_rules_file(path)]
    assert errors == [message]
    with pytest.raises(RulesError):
        load_rules([path])


def test_rule_validation_duplicate_id_and_yaml_syntax(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(GOOD_RULE + GOOD_RULE.split("rules:\n")[1])
    assert validate_rules_file(path) == [f"{path}:13: rules[1].id: duplicate rule id 'r1'"]
    path.write_text("rules: [\n")
    with pytest.raises(RulesError, match=r"r\.yaml:2: invalid YAML"):
        validate_rules_file(path)


GOOD_SITE = """\
control_plane:
  addresses: [10.0.0.2, fd00::2]
  names: [helix.example.com]
sandboxes:
  addresses: [10.0.1.0/24]
dns_servers: [10.0.0.53]
proxies: ["10.0.0.3:3128", "[fd00::3]:3128"]
llm_providers: [openai, anthropic]
optional: [package-managers, git-providers]
"""


def test_site_profile_loads(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text(GOOD_SITE)
    site = load_site(path)
    assert site.component_of("10.0.1.77") == "sandbox" and site.component_of("fd00::2") == "control_plane"
    assert site.component_of("10.0.2.1") is None and site.is_dns_server("10.0.0.53")
    assert (
        site.is_proxy("10.0.0.3", 3128) and not site.is_proxy("10.0.0.3", 8080) and site.is_proxy("fd00::3")
    )
    assert site.phase == "both" and site.llm_providers == ("openai", "anthropic") and len(site.sha256) == 64


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "dns_servers: [10.0.0.53]",
            "dns_servers: [10.0.0.353]",
            "s.yaml:6: dns_servers: expected a list of IP addresses",
        ),
        (
            "  addresses: [10.0.1.0/24]",
            "  addresses: [10.0.1.0/33]",
            "s.yaml:5: sandboxes.addresses: expected a list of IP addresses or CIDRs",
        ),
        ('"10.0.0.3:3128"', '"10.0.0.3:99999"', "s.yaml:7: proxies: expected a list of ADDRESS:PORT"),
        (
            "llm_providers: [openai, anthropic]",
            "llm_providers: [openai, mistral]",
            "s.yaml:8: llm_providers: unknown 'mistral' (expected one of: anthropic, openai, together)",
        ),
        (
            "optional: [package-managers, git-providers]",
            "optional: [core]",
            "s.yaml:9: optional: unknown 'core' "
            "(expected one of: desktop-image, git-providers, package-managers)",
        ),
        (
            "dns_servers:",
            "resolvers:",
            "s.yaml:6: resolvers: unknown key "
            "(expected one of: control_plane, sandboxes, dns_servers, proxies, "
            "llm_providers, optional, phase, rulesets)",
        ),
        (
            "sandboxes:\n  addresses: [10.0.1.0/24]\n",
            "sandboxes:\n  addresses: [10.0.1.0/24]\n  names: [x]\n",
            "s.yaml:6: sandboxes.names: unknown key (expected one of: addresses)",
        ),
        ("optional:", "phase: later\noptional:", "s.yaml:9: phase: expected one of: install, runtime, both"),
    ],
)
def test_site_validation_messages(tmp_path, old, new, message):
    assert old in GOOD_SITE
    path = tmp_path / "s.yaml"
    path.write_text(GOOD_SITE.replace(old, new, 1))
    with pytest.raises(SiteError) as err:
        load_site(path)
    assert str(err.value).replace(str(tmp_path) + "/", "") == message
