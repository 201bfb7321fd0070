"""``moodstream bench``: the whole pipeline offline on a fixed 640x480 clip of real faces, beside a
naive MoodStream-style loop (read -> gray -> Haar 1.3/5/48 -> per-face TFLite -> print).

The pipeline run uses the real node classes and topics in one process; frames are fed one at a
time (the next when the previous frame's ``emotion`` arrives), so latency has no queueing in it.
The naive loop runs in a child process so that each peak RSS is its own.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from moodstream_capture.synthetic import SyntheticScene

CLIP_FRAMES = 300


def write_clip(path: Path, frames: int = CLIP_FRAMES, faces: int = 1) -> Path:
    """The benchmark clip: the synthetic scene (a real photographed face), 640x480, MJPG AVI."""
    scene = SyntheticScene(640, 480, faces=faces, seed=0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 480))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write the benchmark clip {path}")
    for i in range(frames):
        writer.write(scene.render(i))
    writer.release()
    return path


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss would carry the parent's over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def pct(values: list[float]) -> tuple[float, float]:
    p50, p95 = np.percentile(np.asarray(values) * 1e3, [50, 95])
    return float(p50), float(p95)


def run_naive(clip: Path, model_path: Path) -> dict:
    """The original MoodStream's loop, for comparison."""
    from moodstream_classify.model import EmotionModel

    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    model = EmotionModel(model_path, num_threads=1)
    cap = cv2.VideoCapture(str(clip))
    sink = io.StringIO()
    stages: dict[str, list[float]] = {"read": [], "gray": [], "detect": [], "classify": []}
    frame_times, faces = [], 0
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        ok, frame = cap.read()
        if not ok:
            break
        t1 = time.perf_counter()
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        t2 = time.perf_counter()
        boxes = cascade.detectMultiScale(gray, scaleFactor=1.3, minNeighbors=5, minSize=(48, 48))
        t3 = time.perf_counter()
        for x, y, w, h in boxes if len(boxes) else []:
            face = cv2.resize(gray[y : y + h, x : x + w], (48, 48)).astype(np.float32) / 255.0
            probs = model.predict(face[np.newaxis, :, :, np.newaxis])[0]
            print(model.labels[int(np.argmax(probs))], file=sink)
            faces += 1
        t4 = time.perf_counter()
        for name, dt in (("read", t1 - t0), ("gray", t2 - t1), ("detect", t3 - t2), ("classify", t4 - t3)):
            stages[name].append(dt)
        frame_times.append(t4 - t0)
    wall = time.perf_counter() - start
    return {"frames": len(frame_times), "faces": faces, "fps": len(frame_times) / wall,
            "stages_ms": {k: pct(v) for k, v in stages.items()}, "frame_to_emotion_ms": pct(frame_times),
            "peak_rss_mb": peak_rss_mb()}


def run_pipeline(clip: Path, model_path: Path | None, overrides: dict, in_flight: int = 1) -> dict:
    """The real nodes (detect, classify) in one executor, fed from the clip through ``image_raw``.

    ``in_flight`` frames travel through the graph at once (1: no queueing in the latency).
    """
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image

    from moodstream_classify.node import ClassifyNode
    from moodstream_common.image_conv import numpy_to_image
    from moodstream_common.ros import IMAGE_QOS, RESULT_QOS
    from moodstream_detect.node import DetectNode
    from moodstream_interfaces.msg import Emotion

    context = Context()
    rclpy.init(context=context)
    classify_params = dict(overrides.get("classify", {}))
    if model_path is not None:
        classify_params["model_path"] = str(model_path)
    detect = DetectNode(context=context, parameter_overrides=[
        Parameter(k, value=v) for k, v in overrides.get("detect", {}).items()])
    classify = ClassifyNode(context=context, parameter_overrides=[
        Parameter(k, value=v) for k, v in classify_params.items()])

    class Feeder(Node):
        def __init__(self) -> None:
            super().__init__("bench_feeder", context=context)
            self.pub = self.create_publisher(Image, "image_raw", IMAGE_QOS)
            self.create_subscription(Emotion, "emotion", self.on_emotion, RESULT_QOS)
            self.cap = cv2.VideoCapture(str(clip))
            self.capture_times: list[float] = []
            self.latencies: list[float] = []
            self.faces = 0
            self.done = False
            self.outstanding = 0
            self.running = False  # chain the next frame to each emotion once measuring
            self.sent_at: dict[tuple[int, int], float] = {}

        def send_next(self) -> None:
            t0 = time.perf_counter()
            ok, frame = self.cap.read()
            if not ok:
                self.done = self.outstanding == 0
                return
            msg = numpy_to_image(frame)
            msg.header.stamp = self.get_clock().now().to_msg()
            msg.header.frame_id = "bench"
            self.capture_times.append(time.perf_counter() - t0)
            self.sent_at[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = t0
            self.outstanding += 1
            self.pub.publish(msg)

        def on_emotion(self, msg: Emotion) -> None:
            sent = self.sent_at.pop((msg.header.stamp.sec, msg.header.stamp.nanosec), None)
            if sent is None:
                return
            self.outstanding -= 1
            self.latencies.append(time.perf_counter() - sent)
            self.faces += msg.faces_in_view
            if self.running:
                self.send_next()

    feeder = Feeder()
    executor = SingleThreadedExecutor(context=context)
    for node in (detect, classify, feeder):
        executor.add_node(node)
    # Warm-up: one frame through the graph so that set-up costs stay out of the numbers.
    feeder.send_next()
    while not feeder.latencies:
        executor.spin_once(timeout_sec=0.1)
    feeder.latencies.clear()
    feeder.capture_times.clear()
    detect.stats = type(detect.stats)()
    classify.stats = type(classify.stats)()
    feeder.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
    feeder.faces = 0
    feeder.running = True
    start = time.perf_counter()
    for _ in range(in_flight):
        feeder.send_next()
    while not feeder.done:
        executor.spin_once(timeout_sec=1.0)
    wall = time.perf_counter() - start
    result = {
        "frames": len(feeder.latencies), "faces": feeder.faces, "fps": len(feeder.latencies) / wall,
        "stages_ms": {"capture": pct(feeder.capture_times), "detect": detect.stats.latency_ms("detect"),
                      "classify": classify.stats.latency_ms("classify")},
        "frame_to_emotion_ms": pct(feeder.latencies), "peak_rss_mb": peak_rss_mb(), "in_flight": in_flight,
        "detect_params": {k: detect.params[k] for k in ("detector", "scale_factor", "min_neighbors",
                                                         "min_size", "downscale", "roi_refresh_frames")},
    }
    for node in (detect, classify, feeder):
        node.destroy_node()
    executor.shutdown()
    rclpy.try_shutdown(context=context)
    return result


def format_row(name: str, r: dict) -> list[str]:
    lines = [f"{name}: {r['frames']} frames, {r['faces']} faces, {r['fps']:.1f} frames/s, "
             f"frame-to-emotion p50 {r['frame_to_emotion_ms'][0]:.2f} ms p95 {r['frame_to_emotion_ms'][1]:.2f} ms, "
             f"peak RSS {r['peak_rss_mb']:.0f} MB"]
    for stage, lat in r["stages_ms"].items():
        if lat is not None:
            lines.append(f"    {stage:9s} p50 {lat[0]:7.2f} ms   p95 {lat[1]:7.2f} ms")
    return lines


def cmd_bench(args: argparse.Namespace) -> int:
    from moodstream_classify.model import default_model_path

    model_path = Path(args.model) if args.model else default_model_path()
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_clip(Path(tmp) / "faces.avi", args.frames, args.faces)
        if args.naive_only:
            print(json.dumps(run_naive(clip if not args.clip else Path(args.clip), model_path)))
            return 0
        overrides = {"detect": {"downscale": args.downscale}}
        pipeline = run_pipeline(clip, model_path, overrides)
        child = subprocess.run(
            [sys.executable, "-m", "moodstream.cli", "bench", "--naive-only", "--model", str(model_path),
             "--clip", str(clip)], capture_output=True, text=True, check=True)
        naive = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"clip: {args.frames} frames 640x480, {args.faces} real face(s) (synthetic scene), MJPG")
    print(f"model: {model_path}")
    print(f"pipeline detector: {pipeline['detect_params']}")
    print("\n".join(format_row("MoodStream pipeline (nodes and topics in one process)", pipeline)))
    print("\n".join(format_row("naive loop (Haar 1.3/5/48 full frame, per-face TFLite, own process)", naive)))
    if args.json:
        Path(args.json).write_text(json.dumps({"pipeline": pipeline, "naive": naive}, indent=2))
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="fps, per-stage latency and memory, pipeline vs a naive loop")
    p.add_argument("--frames", type=int, default=CLIP_FRAMES)
    p.add_argument("--faces", type=int, default=1, choices=(1, 2))
    p.add_argument("--downscale", type=float, default=0.6, help="detect.downscale for the pipeline")
    p.add_argument("--model")
    p.add_argument("--json", help="also write the numbers to this file")
    p.add_argument("--naive-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--clip", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_bench)
