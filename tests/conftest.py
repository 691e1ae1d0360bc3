"""Shared fixtures: a real PostgreSQL server for the tests of many workers on one study."""

from __future__ import annotations

import pytest

from .postgres import postgres_server


@pytest.fixture(scope="session")
def postgres_url():
    with postgres_server() as url:
        yield url
