"""The soak and fuzz script (``scripts/soak.py``, issue 13) at its bounded scale: every check that
is not a wall-clock figure must hold. ``make soak`` runs the full figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.ros]
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "soak.py"


def test_soak_and_fuzz_hold_at_the_bounded_scale(tmp_path):
    report = tmp_path / "soak.json"
    out = subprocess.run([sys.executable, str(SCRIPT), "--json", str(report), "--workdir", str(tmp_path)],
                         capture_output=True, text=True, timeout=480)
    assert report.exists(), out.stdout[-3000:] + out.stderr[-3000:]
    checks = json.loads(report.read_text())["checks"]
    assert {c["part"] for c in checks} == {"api", "openmv"}
    failed = [c for c in checks if not c["ok"] and not c["timing"]]
    assert not failed, json.dumps(failed, indent=1)
    # The timings are printed for the record; on a loaded CI machine they may miss their goals.
    assert out.returncode in (0, 1) and "Traceback" not in out.stderr, out.stderr[-3000:]
