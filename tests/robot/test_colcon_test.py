"""`colcon test` runs each package's own tests (its test/ folder), as a ROS developer expects."""

from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET

import pytest
from workspace import ROOT, VENV_BIN, colcon

pytestmark = pytest.mark.slow


def test_colcon_test_runs_every_packages_tests(workspace):
    run = colcon(workspace, "test", "--event-handlers", "console_direct-")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    packages = {p.parent.parent.name for p in (ROOT / "src").glob("*/test/test_*.py")}
    assert len(packages) >= 10, packages
    for package in packages:
        suite = ET.parse(workspace.base / "build" / package / "pytest.xml").getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        counts = {k: int(suite.get(k)) for k in ("tests", "failures", "errors")}
        assert counts["tests"] > 0 and counts["failures"] == counts["errors"] == 0, (package, counts)
    result = subprocess.run([str(VENV_BIN / "colcon"), "test-result", "--test-result-base",
                             str(workspace.base / "build")], capture_output=True, text=True, cwd=workspace.base)
    tests, errors, failures = (int(x) for x in re.search(
        r"Summary: (\d+) tests, (\d+) errors, (\d+) failures", result.stdout).groups())
    assert tests > 100 and errors == failures == 0, result.stdout
