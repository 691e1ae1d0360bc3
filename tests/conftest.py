"""Shared fixtures: a real PostgreSQL server for the tests of many workers on one study."""

from __future__ import annotations

import pytest

from .postgres import postgres_server


@pytest.fixture(scope="session")
def postgres_url():
    with postgres_server() as url:
        yield url


@pytest.fixture(autouse=True)
def two_physical_cores(monkeypatch):
    """Every test in this process sees the 2 physical cores of the project's CI machine, both idle: `sweep` chooses
    its worker processes and the commands their threads from these, and the tests that run them here expect one
    process unless they ask for more, whatever else (other tests) loads the machine."""
    monkeypatch.setattr("resnet_bench.cpu.physical_cores", lambda: 2)
    monkeypatch.setattr("resnet_bench.cpu.idle_cores", lambda seconds=0.2: 2)
