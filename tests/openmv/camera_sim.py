"""Runs the OpenMV firmware (firmware/openmv/main.py, unchanged) under CPython.

Small stand-ins replace the camera's modules (sensor, image, ml, machine, omv, and the MicroPython
parts of time), with the signatures of the 4.7-4.8 firmware line (``tests/openmv/mp`` holds the
strict stand-ins of every line, run under MicroPython itself): the sensor returns frames
of the synthetic scene (a real photographed face),
Haar detection is OpenCV's, the ml model runs emotion_camera.tflite with ai-edge-litert, and the
UART writes into a pty whose slave is reached through a symlink, like /dev/serial/by-id.

    python camera_sim.py LINK --frames N [--unplug-after K --down-s S] [--faces 1]

With --unplug-after, the pty is closed after K frames (the cable is pulled), the link is gone
for S seconds, then a new pty appears under the same link and the firmware starts again.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pty
import runpy
import sys
import time as real_time
import tty
import types
from pathlib import Path

import cv2
import numpy as np

from moodstream_detect.detectors import find_cascade

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware" / "openmv"
sys.path.insert(0, str(FIRMWARE))


class CameraStopped(BaseException):
    """The simulated camera is switched off (a BaseException: the firmware's per-frame ``try``
    catches Exception only, as a power cut is not something it can report)."""


class Port:
    """One pty pair under a stable symlink."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master = self.slave = None

    def plug(self) -> None:
        self.master, self.slave = pty.openpty()
        tty.setraw(self.slave)
        tmp = self.link.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(self.slave))
        tmp.replace(self.link)

    def unplug(self) -> None:
        self.link.unlink(missing_ok=True)
        for fd in (self.master, self.slave):
            if fd is not None:
                os.close(fd)
        self.master = self.slave = None


def install_stand_ins(port: Port, frames: int, faces: int, model_path: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    from moodstream_capture.synthetic import SyntheticScene

    scene = SyntheticScene(320, 240, faces=faces, seed=1)
    cascade_cv = cv2.CascadeClassifier(str(find_cascade("haarcascade_frontalface_default.xml")))
    state = {"frame": 0}

    class Image:
        def __init__(self, gray: np.ndarray) -> None:
            self.gray = gray

        def width(self) -> int:
            return self.gray.shape[1]

        def height(self) -> int:
            return self.gray.shape[0]

        # The 4.7-4.8 line's signatures (tests/openmv/mp copies all three lines under MicroPython).
        def find_features(self, cascade, threshold=0.5, scale_factor=1.5, roi=None, **ignored):
            found = cascade_cv.detectMultiScale(self.gray, scaleFactor=scale_factor, minNeighbors=4, minSize=(30, 30))
            return [tuple(int(v) for v in r) for r in found] if len(found) else []

        def copy(self, *, roi=None, x_scale=1.0, y_scale=1.0, hint=0, alpha=256, color_palette=None,
                 alpha_palette=None, copy_to_fb=False):
            x, y, w, h = roi if roi is not None else (0, 0, self.width(), self.height())
            size = (int(w * x_scale), int(h * y_scale))
            return Image(cv2.resize(self.gray[y : y + h, x : x + w], size, interpolation=cv2.INTER_AREA))

        def histeq(self, adaptive=False, clip_limit=-1, mask=None):
            self.gray = cv2.equalizeHist(self.gray)
            return self

    sensor = types.ModuleType("sensor")
    sensor.GRAYSCALE, sensor.QVGA = "GRAYSCALE", "QVGA"
    sensor.reset = sensor.set_pixformat = sensor.set_framesize = lambda *a, **k: None
    sensor.skip_frames = lambda *a, **k: None

    def snapshot() -> Image:
        if state["frame"] >= frames:
            raise CameraStopped
        frame = scene.render(state["frame"])
        state["frame"] += 1
        real_time.sleep(1 / 30)
        return Image(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))

    sensor.snapshot = snapshot

    image = types.ModuleType("image")

    def haar_cascade(path, stages=-1):
        if path != "/rom/haarcascade_frontalface.cascade":  # 4.7 on: files only, the ROM holds this one
            raise OSError(2, "No such file")
        return path

    image.HaarCascade = haar_cascade

    class Model:
        def __init__(self, path, load_to_fb=False) -> None:
            local = path.lstrip("/")
            self.interp = Interpreter(model_path=str(model_path if local == model_path.name else local))
            self.interp.allocate_tensors()
            self.inp = self.interp.get_input_details()[0]
            self.out = self.interp.get_output_details()[0]
            self.input_scale = [float(self.inp["quantization"][0])]
            self.input_zero_point = [int(self.inp["quantization"][1])]

        def predict(self, inputs):
            scale, zero = self.inp["quantization"]
            x = np.clip(np.round(inputs[0] / scale) + zero, -128, 127).astype(np.int8).reshape(self.inp["shape"])
            self.interp.set_tensor(self.inp["index"], x)
            self.interp.invoke()
            oscale, ozero = self.out["quantization"]
            return [(self.interp.get_tensor(self.out["index"]).astype(np.float32) - ozero) * oscale]

    class Normalization:
        def __init__(self, scale=(0.0, 1.0), mean=(0.0, 0.0, 0.0), stdev=(1.0, 1.0, 1.0), roi=None) -> None:
            self.lo, self.hi = scale

        def __call__(self, img: Image) -> np.ndarray:
            return (img.gray.astype(np.float32) / 255.0 * (self.hi - self.lo) + self.lo)[..., None]

    ml = types.ModuleType("ml")
    ml.Model = Model
    ml.preprocessing = types.SimpleNamespace(Normalization=Normalization)

    machine = types.ModuleType("machine")

    class UART:
        def __init__(self, port_number, baud, timeout_char=0) -> None:
            pass

        def write(self, data: bytes) -> int:
            return os.write(port.master, data)

    class LED:
        def __init__(self, name) -> None:
            self.name = name

        def on(self) -> None:
            pass

        def off(self) -> None:
            pass

    class WDT:
        def __init__(self, id=0, timeout=5000) -> None:
            pass

        def feed(self) -> None:
            pass

    machine.UART, machine.LED, machine.WDT = UART, LED, WDT
    omv = types.ModuleType("omv")
    omv.version_major, omv.version_minor, omv.version_patch = (lambda: 4), (lambda: 8), (lambda: 1)

    mp_time = types.ModuleType("time")
    mp_time.__dict__.update({k: getattr(real_time, k) for k in dir(real_time) if not k.startswith("__")})
    boot = real_time.monotonic()
    mp_time.ticks_ms = lambda: int((real_time.monotonic() - boot) * 1000) % (1 << 30)
    mp_time.sleep_ms = lambda ms: real_time.sleep(ms / 1000)

    class Clock:
        def __init__(self) -> None:
            self.last, self.rate = None, 0.0

        def tick(self) -> None:
            now = real_time.monotonic()
            if self.last is not None:
                self.rate = 1.0 / max(1e-6, now - self.last)
            self.last = now

        def fps(self) -> float:
            return self.rate

    mp_time.clock = Clock
    sys.modules.update({"sensor": sensor, "image": image, "ml": ml, "machine": machine, "time": mp_time, "omv": omv})


def run_firmware() -> None:
    with contextlib.suppress(CameraStopped):
        runpy.run_path(str(FIRMWARE / "main.py"), run_name="__main__")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("link", type=Path)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--faces", type=int, default=1)
    ap.add_argument("--unplug-after", type=int, default=0)
    ap.add_argument("--down-s", type=float, default=1.5)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "emotion_camera.tflite")
    args = ap.parse_args()
    port = Port(args.link)
    port.plug()
    first = args.unplug_after or args.frames
    install_stand_ins(port, first, args.faces, args.model)
    print("plugged", flush=True)
    run_firmware()
    if args.unplug_after:
        port.unplug()
        print("unplugged", flush=True)
        real_time.sleep(args.down_s)
        port.plug()
        install_stand_ins(port, args.frames - first, args.faces, args.model)  # the camera reboots
        print("plugged", flush=True)
        run_firmware()
    real_time.sleep(1.0)  # let the host read the last frames
    port.unplug()


if __name__ == "__main__":
    main()
