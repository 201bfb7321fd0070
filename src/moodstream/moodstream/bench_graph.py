"""``moodstream bench-graph``: the CPU a robot pays per frame, side by side in one run.

Three ways to run the same job on the synthetic scene (a real photographed face) at a fixed
camera rate, then as fast as they can:

- the **naive loop** (MoodStream's original style, its own process): render, gray, Haar
  1.3/5/48 on the full frame, each face through the model;
- the **in-process runner** (``moodstream run``, its own process): the real nodes in one process
  and executor;
- the **launched graph**: the process ``ros2 launch moodstream pipeline.launch.py bridge:=false``
  starts (``pipeline_node``: the three stages composed in one process), and with
  ``composed:=false``, ``capture_node``, ``detect_node`` and ``classify_node`` as separate
  processes; the same parameters.

For each: CPU time per frame (per process for the graph, from /proc), frames per second at the
fixed rate and at full speed, frame-to-``emotion`` latency p50/p95 (the frame's stamp to its
``emotion`` arriving in a separate node, this one), and peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STAGES = ("capture", "detect", "classify")
#: The camera rate of the runs "flat out": capture.fps's highest, above what any of them keeps up
#: with, so that each goes as fast as it can.
FLAT_OUT_FPS = 1000.0


def cpu_seconds(pid: int | str = "self") -> float:
    """User + system CPU time of a process so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mb(pid: int | str = "self") -> float:
    """Peak resident memory (VmHWM; ru_maxrss would carry a parent's over exec)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def percentiles(values: list[float]) -> list[float]:
    """p50 and p95 in milliseconds of durations in seconds."""
    if not values:
        return [float("nan"), float("nan")]
    return [float(v) for v in np.percentile(np.asarray(values) * 1e3, [50, 95])]


# -- the naive loop ---------------------------------------------------------------------------------
def naive_loop(faces: int, fps: float | None, seconds: float, model_path: str) -> dict:
    """Render, gray, Haar 1.3/5/48 full frame, per-face model; at ``fps`` (None: flat out)."""
    import cv2

    from moodstream_capture.synthetic import SyntheticScene
    from moodstream_classify.model import EmotionModel
    from moodstream_detect.detectors import find_cascade

    scene = SyntheticScene(640, 480, faces=faces, seed=0)
    cascade = cv2.CascadeClassifier(str(find_cascade("haarcascade_frontalface_default.xml")))
    model = EmotionModel(Path(model_path), num_threads=1)
    latencies, found = [], 0

    def one(index: int) -> None:
        nonlocal found
        t0 = time.perf_counter()
        frame = scene.render(index)
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        for x, y, w, h in cascade.detectMultiScale(gray, scaleFactor=1.3, minNeighbors=5, minSize=(48, 48)):
            crop = cv2.resize(gray[y:y + h, x:x + w], (48, 48)).astype(np.float32) / 255.0
            model.predict(crop[np.newaxis, :, :, np.newaxis])
            found += 1
        latencies.append(time.perf_counter() - t0)

    for i in range(10):  # warm-up
        one(i)
    latencies.clear()
    found = 0
    cpu0, start, index = cpu_seconds(), time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        one(index)
        index += 1
        if fps:
            delay = start + index / fps - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    wall = time.perf_counter() - start
    cpu = cpu_seconds() - cpu0
    return {"frames": index, "fps": index / wall, "faces_per_frame": found / max(1, index),
            "cpu_ms_per_frame": {"total": 1e3 * cpu / max(1, index)}, "latency_ms": percentiles(latencies),
            "peak_rss_mb": {"total": peak_rss_mb()}}


def naive_in_child(faces: int, fps: float | None, seconds: float, model_path: str) -> dict:
    """The naive loop in its own process, so that its RSS and CPU are its own."""
    return _child_result(["--naive-child", str(faces), str(fps or 0), str(seconds), model_path])


def _child_result(args: list[str]) -> dict:
    """The JSON a child run of this module prints last; its own error when it fails."""
    out = subprocess.run([sys.executable, "-m", "moodstream.bench_graph", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"the benchmark's child run {args[0]} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- probes: emotion latency in a separate node ----------------------------------------------------
class Probe:
    """Subscribes to ``emotion`` in ``context`` and records stamp-to-arrival latencies: through DDS
    from the launched graph, in-process from the runner (as the runner's own console and counters
    take them)."""

    def __init__(self, context, executor=None) -> None:
        from rclpy.node import Node

        from moodstream_common import local_bus
        from moodstream_common.ros import record_qos
        from moodstream_interfaces.msg import Emotion

        self.node = Node("bench_probe", context=context)
        self.counting = False
        self.latencies: list[float] = []
        self.frames = 0
        self.faces = 0
        self.subscription = local_bus.subscribe(self.node, Emotion, "emotion", self._on_emotion, record_qos(100))
        if executor is not None:
            executor.add_node(self.node)

    def _on_emotion(self, msg) -> None:
        if not self.counting:
            return
        now = self.node.get_clock().now().nanoseconds
        self.latencies.append((now - (msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)) * 1e-9)
        self.frames += 1
        self.faces += msg.faces_in_view

    def start(self) -> None:
        self.latencies.clear()
        self.frames = self.faces = 0
        self.counting = True


# -- the in-process runner -------------------------------------------------------------------------
def runner(faces: int, fps: float, seconds: float, overrides: dict) -> dict:
    from .runner import Pipeline

    params = {node: dict(values) for node, values in overrides.items()}
    params.setdefault("capture", {}).update({"source": "synthetic", "fps": fps, "synthetic_faces": faces})
    pipeline = Pipeline(params)
    try:
        probe = Probe(pipeline.context, pipeline.executor)
        pipeline.run(duration=3.0)  # warm-up
        probe.start()
        cpu0, start = cpu_seconds(), time.perf_counter()
        pipeline.run(duration=seconds)
        cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - start
        frames = probe.frames
        return {"frames": frames, "fps": frames / wall, "faces_per_frame": probe.faces / max(1, frames),
                "cpu_ms_per_frame": {"total": 1e3 * cpu / max(1, frames)}, "latency_ms": percentiles(probe.latencies),
                "peak_rss_mb": {"total": peak_rss_mb()}}
    finally:
        pipeline.close()


def runner_in_child(faces: int, fps: float, seconds: float, overrides: dict) -> dict:
    """The runner in its own process, so that its peak RSS is its own, not the largest of every
    run before it in this one."""
    return _child_result(["--runner-child", str(faces), str(fps), str(seconds), json.dumps(overrides)])


# -- the launched graph ----------------------------------------------------------------------------
def graph(faces: int, fps: float, seconds: float, overrides: dict, log_dir: Path, user_env: dict,
          composed: bool = True) -> dict:
    """capture, detect and classify as ``pipeline.launch.py`` starts them: in one ``pipeline_node``
    process (``composed:=true``, the default), or one process each (``composed:=false``), each
    with the Fast DDS profile the launch file gives it in ``user_env`` (the environment before
    this command chose its own)."""
    import rclpy
    import yaml
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor

    from moodstream_common.environment import dds_settings
    params = {node: dict(values) for node, values in overrides.items()}
    params.setdefault("capture", {}).update({"source": "synthetic", "fps": fps, "synthetic_faces": faces})
    bin_dir = Path(sys.executable).parent
    procs: dict[str, subprocess.Popen] = {}
    log_dir.mkdir(parents=True, exist_ok=True)
    context = Context()
    try:
        params_file = log_dir / "params.yaml"
        params_file.write_text(yaml.safe_dump({stage: {"ros__parameters": params.get(stage, {})} for stage in STAGES}))
        commands = ({"pipeline": [str(bin_dir / "pipeline_node")]} if composed
                    else {stage: [str(bin_dir / f"{stage}_node")] for stage in STAGES})
        for name, command in commands.items():
            with (log_dir / f"{name}.log").open("w") as log:
                procs[name] = subprocess.Popen([*command, "--ros-args", "--params-file", str(params_file)],
                                               stdout=log, stderr=subprocess.STDOUT,
                                               env={**user_env, **dds_settings(user_env, process=name)})
        rclpy.init(context=context)
        executor = SingleThreadedExecutor(context=context)
        probe = Probe(context, executor)
        probe.counting = True
        deadline = time.monotonic() + 60
        while probe.frames < 30:  # the graph is up and warm
            executor.spin_once(timeout_sec=0.1)
            dead = [s for s, p in procs.items() if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join((log_dir / f"{s}.log").read_text()[-1500:] for s in procs)
                raise RuntimeError(f"the graph did not start ({', '.join(dead) or 'no emotion'}):\n{logs}")
        probe.start()
        cpu0 = {s: cpu_seconds(p.pid) for s, p in procs.items()}
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            executor.spin_once(timeout_sec=0.05)
        wall = time.perf_counter() - start
        cpu = {s: cpu_seconds(p.pid) - cpu0[s] for s, p in procs.items()}
        rss = {s: peak_rss_mb(p.pid) for s, p in procs.items()}
        frames = probe.frames
        per_frame = {s: 1e3 * c / max(1, frames) for s, c in cpu.items()}
        per_frame["total"] = sum(per_frame.values())
        rss["total"] = sum(rss.values())
        executor.shutdown()
        probe.node.destroy_node()
        return {"frames": frames, "fps": frames / wall, "faces_per_frame": probe.faces / max(1, frames),
                "cpu_ms_per_frame": per_frame, "latency_ms": percentiles(probe.latencies), "peak_rss_mb": rss}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs.values():
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        rclpy.try_shutdown(context=context)


# -- the command -----------------------------------------------------------------------------------
def row(name: str, r: dict) -> str:
    cpu = r["cpu_ms_per_frame"]
    parts = ", ".join(f"{k} {v:.2f}" for k, v in cpu.items() if k != "total")
    rss = r["peak_rss_mb"]
    rss_parts = ", ".join(f"{k} {v:.0f}" for k, v in rss.items() if k != "total")
    detail = f"   [cpu {parts}; rss {rss_parts}]" if parts else ""
    return (f"{name:34s} {r['fps']:7.1f} {cpu['total']:8.2f} {r['latency_ms'][0]:7.1f} {r['latency_ms'][1]:7.1f} "
            f"{rss['total']:7.0f}  {r['faces_per_frame']:.2f}{detail}")


def cmd_bench_graph(args: argparse.Namespace) -> int:
    from moodstream_classify.model import default_model_path
    from moodstream_common.environment import choose_dds_profile, prepare_environment, user_environment

    from .params import merge, parse_assignments

    prepare_environment()
    choose_dds_profile(process="runner")  # as `moodstream run` does, for the runner's runs and the probe
    user_env = user_environment()
    model_path = str(Path(args.model) if args.model else default_model_path())
    overrides = merge({"classify": {"model_path": model_path}}, parse_assignments(args.param))
    results: dict = {"machine": os.uname().machine, "cpus": os.cpu_count(), "fps": args.fps,
                     "seconds": args.seconds, "model": model_path, "params": overrides, "runs": {}}
    header = (f"{'run':34s} {'frames/s':>7s} {'CPU ms/frame':>8s} {'p50 ms':>7s} {'p95 ms':>7s} {'RSS MB':>7s}"
              "  faces/frame")
    print(f"synthetic scene 640x480, camera at {args.fps:g} fps, {args.seconds:g} s per run; CPU per frame "
          "= process CPU time / frames that reached `emotion`; latency = frame stamp to `emotion` in another node")
    print(header)
    log_dir = Path(args.log_dir)
    for faces in args.faces:
        runs = {
            f"naive loop @{args.fps:g}": lambda f=faces: naive_in_child(f, args.fps, args.seconds, model_path),
            f"runner @{args.fps:g}": lambda f=faces: runner_in_child(f, args.fps, args.seconds, overrides),
            f"launched graph @{args.fps:g}": lambda f=faces: graph(f, args.fps, args.seconds, overrides,
                                                                 log_dir / f"{f}face", user_env),
            f"graph, process per stage @{args.fps:g}": lambda f=faces: graph(
                f, args.fps, args.seconds, overrides, log_dir / f"{f}face-split", user_env, composed=False),
            "naive loop, flat out": lambda f=faces: naive_in_child(f, None, args.seconds, model_path),
            "runner, flat out": lambda f=faces: runner_in_child(f, FLAT_OUT_FPS, args.seconds, overrides),
            "launched graph, flat out": lambda f=faces: graph(f, FLAT_OUT_FPS, args.seconds, overrides,
                                                            log_dir / f"{f}face-max", user_env),
            "graph, process per stage, flat out": lambda f=faces: graph(
                f, FLAT_OUT_FPS, args.seconds, overrides, log_dir / f"{f}face-split-max", user_env, composed=False),
        }
        for name, run in runs.items():
            if args.only and not any(word in name for word in args.only):
                continue
            result = run()
            results["runs"][f"{faces} face(s), {name}"] = result
            print(row(f"{faces} face(s), {name}", result), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("bench-graph", help="CPU per frame, fps, latency and RSS: naive loop, runner, launched graph")
    p.add_argument("--faces", type=int, nargs="+", default=[1, 2], choices=(1, 2))
    p.add_argument("--fps", type=float, default=30.0, help="the camera rate of the fixed-rate runs")
    p.add_argument("--seconds", type=float, default=10.0, help="measured time per run (after a warm-up)")
    p.add_argument("--model", help="the classify model (default: the installed one)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NODE.NAME=VALUE",
                   help="a parameter of the runner's and the graph's nodes, as in `moodstream run`")
    p.add_argument("--only", nargs="+", help="runs whose name holds one of these words (naive, runner, graph, flat)")
    p.add_argument("--log-dir", default="/tmp/moodstream-bench-graph", help="the graph's node logs")
    p.add_argument("--json", help="also write the numbers to this file")
    p.set_defaults(func=cmd_bench_graph)


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--naive-child":
    _, _, n_faces, rate, secs, model = sys.argv
    print(json.dumps(naive_loop(int(n_faces), float(rate) or None, float(secs), model)))
elif __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "--runner-child":
    _, _, n_faces, rate, secs, params = sys.argv
    print(json.dumps(runner(int(n_faces), float(rate), float(secs), json.loads(params))))
