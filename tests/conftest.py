"""Shared fixtures: a throwaway CA and MQTT credentials made by our own pki code, and the real broker.

Also installs the integration guard (tests/integration_guard.py): a test that starts a process or a
server without `@pytest.mark.integration` fails.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from common.redaction import forget_secrets
from devstack.local_broker import RunningBroker, run_broker
from tests.integration_guard import register as register_integration_guard
from tests.pki_helpers import Pki, make_pki

__all__ = ["Pki", "make_pki"]  # re-exported for modules that still import them from here


def pytest_configure(config: pytest.Config) -> None:
    register_integration_guard(config)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fault tests' one-line figures (tests/fault_helpers.py), together at the end of the run's output."""
    helpers = sys.modules.get("tests.fault_helpers")
    if helpers is not None and helpers.SUMMARIES:
        terminalreporter.section("fault tests: sent / answered once / errors / lost / duplicated / longest stall")
        for line in helpers.SUMMARIES:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """One CA and credentials for the whole run."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A second, unrelated CA: what an attacker's certificates chain to."""
    return make_pki(tmp_path_factory.mktemp("other-pki"))


@pytest.fixture(scope="session")
def broker(pki: Pki) -> Iterator[RunningBroker]:
    """The real mosquitto with our config, on a free 127.0.0.1 port; stopped at the end."""
    with run_broker(pki.ca, pki.cert("mosquitto"), pki.key("mosquitto"), pki.mosquitto_passwd) as running:
        yield running


@pytest.fixture(autouse=True)
def _no_secrets_leak_between_tests() -> Iterator[None]:
    yield
    forget_secrets()
