"""Fixtures for the robot path: one colcon workspace built per test session."""

from __future__ import annotations

import pytest
from workspace import Workspace, missing_stack, require


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> Workspace:
    reason = missing_stack()
    if reason:
        require(reason)
    return Workspace(tmp_path_factory.mktemp("ws"))
