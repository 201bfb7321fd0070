"""Fixtures for the robot path: one colcon workspace built per test session, and a ROS domain of
its own for each test, so that a launched graph, the ros2 CLI and the test's own nodes never see
nodes that another test left behind in the session's domain (a CI run once did)."""

from __future__ import annotations

import itertools
import os
import random

import pytest
from workspace import Workspace, missing_stack, require

# Apart from the session's domains (1-101, tests/conftest.py); Fast DDS's ports allow up to 232.
_DOMAINS = itertools.count(random.SystemRandom().randrange(80))


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> Workspace:
    reason = missing_stack()
    if reason:
        require(reason)
    return Workspace(tmp_path_factory.mktemp("ws"))


@pytest.fixture(autouse=True)
def own_ros_domain(request, monkeypatch):
    """This test's processes (through the workspace's environment) and its in-process nodes
    (through ROS_DOMAIN_ID, read when a context starts) share a domain no other test uses."""
    domain = str(150 + next(_DOMAINS) % 80)
    monkeypatch.setenv("ROS_DOMAIN_ID", domain)
    workspace = request.getfixturevalue("workspace") if "workspace" in request.fixturenames else None
    before = workspace.env.get("ROS_DOMAIN_ID") if workspace is not None else None
    if workspace is not None:
        workspace.env["ROS_DOMAIN_ID"] = domain
    yield domain
    if workspace is not None:
        workspace.env["ROS_DOMAIN_ID"] = before if before is not None else os.environ.get("ROS_DOMAIN_ID", "0")
