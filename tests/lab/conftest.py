"""Session-scoped lab fixtures: one lab per session, one capture per scenario (root required)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from . import scenarios
from .lab import Lab, missing_tools


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("the network lab needs root (ip netns, tcpdump)")
    if missing := missing_tools():
        pytest.skip(f"the network lab needs {', '.join(missing)} (Debian packages: see .ci/run)")
    workdir = tmp_path_factory.mktemp("lab")
    os.chmod(workdir, 0o755)
    the_lab = Lab(workdir)
    try:
        the_lab.start()
    except Exception as exc:
        the_lab.close()
        pytest.fail(f"lab setup failed: {exc}")
    try:
        yield the_lab
    finally:
        the_lab.close()


@pytest.fixture(scope="session")
def lab_compliant(lab: Lab) -> scenarios.Run:
    return scenarios.compliant(lab)


@pytest.fixture(scope="session")
def lab_unexpected(lab: Lab) -> scenarios.Run:
    return scenarios.unexpected(lab)


@pytest.fixture(scope="session")
def lab_inbound(lab: Lab) -> scenarios.Run:
    return scenarios.inbound(lab)


@pytest.fixture(scope="session")
def lab_blocked(lab: Lab) -> scenarios.Run:
    return scenarios.blocked(lab)


@pytest.fixture(scope="session")
def lab_proxied(lab: Lab) -> scenarios.Run:
    return scenarios.proxied(lab)
