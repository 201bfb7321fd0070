#!/usr/bin/env python3
"""Soak and fuzz MoodStream as a hostile user would (issue 13), and print what held.

    python scripts/soak.py              # bounded: a few minutes (what CI runs, through pytest)
    python scripts/soak.py --full       # the issue's figures: 10^6 fuzzed frames, 40 clients, ...
    python scripts/soak.py --only openmv --json soak.json

Two parts, each a list of checks with the measured value and the goal:

- ``api``: a real ``moodstream serve`` with its default limits (2 workers). Concurrent 1920x1080
  JPEG uploads, decompression bombs of every accepted format (and one refused format), stalled
  uploads, a flood of idle connections; the server's resident memory sampled throughout.
- ``openmv``: the UART parser fed random bytes, mutations of valid frames and absurd values with
  valid checksums (nothing may crash; nothing corrupted may come out); the same stream through the
  real host node on a pty; then 30 fps with 2-second host stalls, every frame reaching the bridge
  or counted as dropped.

Exit status 1 when a check fails. Timings are printed, never part of a test's verdict.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FACE_JPG = ROOT / "src/moodstream_capture/moodstream_capture/data/astronaut_face.jpg"


@dataclass
class Check:
    part: str
    name: str
    value: float | int | str
    goal: str
    ok: bool
    timing: bool = False  # a wall-clock figure: reported, machine-dependent


@dataclass
class Scale:
    clients: int
    bombs_repeat: int
    stalled: int
    read_timeout_s: float | None  # None: the server's default (30 s)
    fuzz_frames: int
    node_fuzz_frames: int
    stall_seconds: float
    stalls: int


QUICK = Scale(clients=12, bombs_repeat=1, stalled=80, read_timeout_s=3.0, fuzz_frames=30_000,
              node_fuzz_frames=3_000, stall_seconds=2.0, stalls=2)
FULL = Scale(clients=40, bombs_repeat=3, stalled=500, read_timeout_s=None, fuzz_frames=1_000_000,
             node_fuzz_frames=100_000, stall_seconds=2.0, stalls=3)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the API ----------------------------------------------------------------------------------------
class MemorySampler(threading.Thread):
    """Peak resident memory of one process, from /proc, every 20 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_mb, self._stop = pid, 0.0, threading.Event()

    def current_mb(self) -> float:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self.current_mb())
            time.sleep(0.02)

    def reset(self) -> None:
        self.peak_mb = self.current_mb()

    def stop(self) -> None:
        self._stop.set()


def png_bomb(side: int) -> bytes:
    """A real PNG of side x side black gray pixels: a few hundred kB that decode to side^2 bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    compressor, row, parts = zlib.compressobj(9), b"\0" * (side + 1), []
    for _ in range(side):
        parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))


def bombs() -> dict[str, tuple[bytes, str]]:
    """Small uploads that claim (or decode to) enormous images, and one format the API cannot check."""
    import cv2
    import numpy as np

    _, jpg = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))
    jpeg = bytearray(jpg.tobytes())
    sof = jpeg.find(b"\xff\xc0")
    jpeg[sof + 5:sof + 9] = struct.pack(">HH", 65000, 65000)  # height, width in the frame header
    gif = (b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00" + b",\0\0\0\0"
           + b"\xff\xff\xff\xff\x00\x02\x02\x4c\x01\x00;")
    bmp_header = struct.pack("<IiiHHIIiiII", 40, 60000, 60000, 1, 24, 0, 0, 2835, 2835, 0, 0)
    bmp = b"BM" + struct.pack("<IHHI", 54 + 64, 0, 0, 54) + bmp_header + b"\0" * 64
    webp = (b"RIFF" + (30).to_bytes(4, "little") + b"WEBPVP8X" + (10).to_bytes(4, "little") + b"\0" * 4
            + (15999).to_bytes(3, "little") + (15999).to_bytes(3, "little") + b"\0" * 8)
    _, tiff = cv2.imencode(".tiff", np.zeros((8, 8), np.uint8))
    return {"png 16000x16000 (real data)": (png_bomb(16000), "image/png"),
            "jpeg claiming 65000x65000": (bytes(jpeg), "image/jpeg"),
            "gif claiming 65535x65535": (gif, "image/gif"),
            "bmp claiming 60000x60000": (bmp, "image/bmp"),
            "webp claiming 16000x16000": (webp, "image/webp"),
            "tiff (size not checkable)": (tiff.tobytes(), "image/tiff")}


def api_part(scale: Scale, workdir: Path) -> list[Check]:
    import cv2
    import httpx

    from moodstream_capture.synthetic import SyntheticScene

    checks: list[Check] = []
    port = free_port()
    args = [str(Path(sys.executable).parent / "moodstream"), "serve", "--port", str(port)]
    if scale.read_timeout_s is not None:
        args += ["--read-timeout", str(scale.read_timeout_s)]
    read_timeout = scale.read_timeout_s or 30.0
    log = workdir / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            raise RuntimeError(f"moodstream serve did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.2)
    memory = MemorySampler(server.pid)
    memory.start()
    idle_mb = memory.current_mb()
    try:
        # 1. concurrent full-HD uploads
        frame = cv2.resize(SyntheticScene(faces=2, seed=1).render(0), (1920, 1080))
        big = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
        timeout_s = 10.0  # the server's default analysis timeout

        def upload(_: int) -> tuple[int, float]:
            started = time.monotonic()
            try:
                r = httpx.post(f"{base}/v1/analyze", content=big, headers={"Content-Type": "image/jpeg"}, timeout=60)
                return r.status_code, time.monotonic() - started
            except httpx.HTTPError as err:
                return -1 if not isinstance(err, httpx.TimeoutException) else -2, time.monotonic() - started

        memory.reset()
        with concurrent.futures.ThreadPoolExecutor(scale.clients) as pool:
            answers = list(pool.map(upload, range(scale.clients)))
        statuses = sorted({s for s, _ in answers})
        slowest = max(t for _, t in answers)
        checks += [
            Check("api", f"{scale.clients} concurrent 1920x1080 JPEGs: answers", ", ".join(
                f"{s}x{sum(1 for a, _ in answers if a == s)}" for s in statuses), "every one 200 or 503",
                set(statuses) <= {200, 503}),
            Check("api", "... slowest answer (s)", round(slowest, 2), f"<= timeout + 2 = {timeout_s + 2:g}",
                  slowest <= timeout_s + 2, timing=True),
            Check("api", "... peak resident memory (MB)", round(memory.peak_mb), f"<= 1200 (idle: {idle_mb:.0f})",
                  memory.peak_mb <= 1200),
        ]
        started = time.monotonic()
        r = httpx.post(f"{base}/v1/analyze", content=FACE_JPG.read_bytes(), headers={"Content-Type": "image/jpeg"},
                       timeout=30)
        after = time.monotonic() - started
        checks.append(Check("api", "next request after the burst (s)", round(after, 2), "answered 200 within 3 s",
                            r.status_code == 200 and after <= 3.0, timing=True))

        # 2. decompression bombs
        memory.reset()
        worst_s, codes = 0.0, {}
        for _ in range(scale.bombs_repeat):
            for name, (body, kind) in bombs().items():
                started = time.monotonic()
                r = httpx.post(f"{base}/v1/analyze", content=body, headers={"Content-Type": kind}, timeout=30)
                worst_s = max(worst_s, time.monotonic() - started)
                codes[name] = r.status_code
        checks += [
            Check("api", "decompression bombs: answers", ", ".join(f"{n}: {c}" for n, c in codes.items()),
                  "every one 4xx", all(400 <= c < 500 for c in codes.values())),
            Check("api", "... slowest answer (s)", round(worst_s, 2), "<= 1", worst_s <= 1.0, timing=True),
            Check("api", "... peak resident memory (MB)", round(memory.peak_mb), "<= 700", memory.peak_mb <= 700),
        ]

        # 3. stalled uploads and a flood of idle connections
        head = (b"POST /v1/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
                b"Content-Length: 100000\r\n\r\n\xff\xd8" + b"\0" * 1000)
        sockets = []
        for _ in range(scale.stalled):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(head)
                sockets.append(s)
            except OSError:
                break
        started = time.monotonic()
        # While the server still answers the uploads beyond its admission (503 each), every
        # connection counts toward uvicorn's limit and a request may meet it (503 too): on a loaded
        # machine that can last a moment. So /health is asked until it answers 200, for as long as
        # the stalled uploads are surely still held (half the read timeout).
        while True:
            health = httpx.get(f"{base}/health", timeout=10).status_code
            if health == 200 or time.monotonic() - started > read_timeout / 2:
                break
            time.sleep(0.1)
        cut: list[float] = []
        for s in sockets:
            s.settimeout(max(1.0, read_timeout + 15 - (time.monotonic() - started)))
            try:
                s.recv(4096)  # an answer (408 or 503) or the server closing: either way, cut off
                cut.append(time.monotonic() - started)
            except OSError:
                pass
            s.close()
        slowest_cut = max(cut) if cut else float("inf")
        checks += [
            Check("api", f"{len(sockets)} stalled uploads: cut off", f"{len(cut)} of {len(sockets)}", "all",
                  len(cut) == len(sockets)),
            Check("api", "... the last one cut off after (s)", round(slowest_cut, 1),
                  f"<= read timeout {read_timeout:g} s (+2)", slowest_cut <= read_timeout + 2, timing=True),
            Check("api", "... /health meanwhile", health, "200", health == 200),
        ]
    finally:
        memory.stop()
        server.terminate()
        server.wait(timeout=15)
    text = log.read_text()
    checks.append(Check("api", "tracebacks in the server's log", text.count("Traceback"), "0",
                        "Traceback" not in text))
    return checks


# -- OpenMV -----------------------------------------------------------------------------------------
def fuzz_stream(n: int, seed: int):
    """(bytes, meaning) pairs: valid frames, their mutations, random bytes and absurd values with a
    valid CRC. ``meaning``: the event a valid frame stands for; ("mutated", the event before the
    mutation); None: nothing may come out."""
    from moodstream_openmv.firmware_protocol import encode_faces, encode_heartbeat, frame_line
    from moodstream_openmv.protocol import parse_body

    rng = random.Random(seed)
    absurd_bodies = [
        "MSE,1,%d," + "9" * 5000 + ",F,1;10,10,40,40,happy,900,900:20:20:20:20:20",
        "MSE,1,%d,5,F,1;10,10,40,40,happy,900,900:900:900:900:900:900",
        "MSE,1,%d,5,F,1;10,10,40,40,happy,0,0:0:0:0:0:0",
        "MSE,1,%d,5,F,1;10,10,40,40,happy,nan,nan:0:0:0:0:0",
        "MSE,1,%d,5,F,1;-10,10,40,40,happy,900,900:20:20:20:20:20",
        "MSE,1,%d,5,F,2;10,10,40,40,happy,900,900:20:20:20:20:20",
        "MSE,1,%d,5,F,1;10,10,0,0,happy,900,900:20:20:20:20:20",
        "MSE,1,%d,5,F,1;10,10,40,40,joyful,900,900:20:20:20:20:20",
        "MSE,1,%d,5,F,1;10,10,40,40,sad,900,900:20:20:20:20:20",
        "MSE,1,%d,5,F,1;10,10,40,40,happy,900,900:20:20:20:20",
        "MSE,1,%d,5,H,99999999999999999999",
        "MSE,2,%d,5,H,10",
        "MSE,1,%d,5,Z,1",
        "MSE,1,%d,5,F,100000;" + ";".join(["1,1,1,1,happy,1000,1000:0:0:0:0:0"] * 3),
        "MSE,1,%d,1e3,F,1;10,10,40,40,happy,900,900:20:20:20:20:20",
        "MSE,1,%d,5,F,1;10,10,40,40,happy,900,900:20:20:20:20:２0",
    ]
    seq = 0
    for _ in range(n):
        seq = (seq + 1) % 65536
        kind = rng.random()
        if kind < 0.30 or kind >= 0.95:
            faces = [((rng.randrange(300), rng.randrange(200), rng.randrange(1, 120), rng.randrange(1, 120)),
                      _probabilities(rng)) for _ in range(rng.randrange(0, 4))]
            line = encode_faces(seq, rng.randrange(2**32), faces) if faces else encode_heartbeat(
                seq, rng.randrange(2**32), rng.random() * 60)
            original = parse_body(line[1:line.index(b"*")].decode())
            if kind < 0.30:
                yield line, original
            else:  # a frame cut short by a lost byte at the end
                yield line[:rng.randrange(1, len(line) - 1)] + b"\n", None
        elif kind < 0.65:  # a valid frame, mutated: flipped bits, bytes inserted, deleted, replaced
            faces = [((rng.randrange(300), rng.randrange(200), rng.randrange(1, 120), rng.randrange(1, 120)),
                      _probabilities(rng))]
            line = bytearray(encode_faces(seq, rng.randrange(2**32), faces))
            original = parse_body(line[1:line.index(b"*")].decode())
            for _ in range(rng.randrange(1, 4)):
                at = rng.randrange(1, len(line) - 1)
                op = rng.randrange(4)
                if op == 0:
                    line[at] ^= 1 << rng.randrange(8)
                elif op == 1:
                    line.insert(at, rng.randrange(256))
                elif op == 2:
                    del line[at]
                else:
                    line[at] = rng.randrange(256)
            if not line.endswith(b"\n"):
                line += b"\n"
            yield bytes(line), ("mutated", original)
        elif kind < 0.80:
            yield bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))), None
        else:
            yield frame_line(rng.choice(absurd_bodies).replace("%d", str(seq), 1)), None


def _probabilities(rng: random.Random) -> list[float]:
    raw = [rng.random() ** 3 for _ in range(6)]
    total = sum(raw)
    return [v / total for v in raw]


def parser_fuzz(frames: int, seed: int = 13) -> tuple[list[Check], dict]:
    from moodstream_openmv.protocol import BareLabel, LineParser

    parser = LineParser(accept_bare_labels=True)
    valid = accepted_valid = corrupted_out = crashes = mutated = mutated_out = mutated_same = 0
    started = time.monotonic()
    for data, original in fuzz_stream(frames, seed):
        # Each item is sent alone, after a newline, so that what comes out is known to be its own.
        try:
            events = parser.feed(b"\n" + data)
        except Exception:  # the fuzzer counts any crash
            crashes += 1
            continue
        events = [e for e in events if not isinstance(e, BareLabel)]
        if isinstance(original, tuple):
            mutated += 1
            # A mutation may touch nothing that matters (the case of a CRC digit, a byte before the
            # '$'): the same event again is right; anything else is a corrupted result.
            mutated_same += sum(1 for e in events if e == original[1])
            mutated_out += sum(1 for e in events if e != original[1])
        elif original is None:
            corrupted_out += len(events)
        else:
            valid += 1
            accepted_valid += sum(1 for e in events if e == original)
            corrupted_out += sum(1 for e in events if e != original)
    seconds = time.monotonic() - started
    c = parser.counters
    checks = [
        Check("openmv", f"parser: {frames:,} fuzzed items, crashes", crashes, "0", crashes == 0),
        Check("openmv", "... valid frames reported exactly", f"{accepted_valid} of {valid}", "all",
              accepted_valid == valid),
        Check("openmv", "... results from random bytes, cut frames, absurd values", corrupted_out, "0",
              corrupted_out == 0),
        Check("openmv", "... corrupted results from mutated frames (CRC-16 + validation)",
              f"{mutated_out} of {mutated:,} ({mutated_same} harmless mutations gave the original frame)", "0",
              mutated_out == 0),
        Check("openmv", "... items per second", round(frames / seconds), "(throughput)", True, timing=True),
    ]
    return checks, {"checksum_errors": c.checksum_errors, "malformed": c.malformed, "garbage_bytes": c.garbage_bytes}


def node_fuzz(frames: int, stall_s: float, stalls: int, seed: int = 7) -> list[Check]:
    """The real host node (in the runner's pipeline, with the bridge) on a pty: the fuzz stream,
    then 30 fps with host stalls."""
    import tty

    from moodstream.runner import Pipeline
    from moodstream_openmv.firmware_protocol import encode_faces

    checks: list[Check] = []
    master, slave = os.openpty()
    tty.setraw(slave)
    overrides = {"openmv": {"port": os.ttyname(slave), "reconnect_max_s": 0.5},
                 "bridge": {"history": "never"}}
    pipeline = Pipeline(overrides, openmv=True, bridge=True)
    try:
        pipeline.run(duration=0.5)
        node = pipeline.openmv
        stream = list(fuzz_stream(frames, seed))
        writer_done = threading.Event()

        def write_fuzz() -> None:
            for data, _ in stream:
                os.write(master, b"\n" + data)
            writer_done.set()

        threading.Thread(target=write_fuzz, daemon=True).start()
        valid = sum(1 for _, meaning in stream if meaning is not None and not isinstance(meaning, tuple))
        deadline = time.monotonic() + 120
        seen = -1
        while time.monotonic() < deadline:  # until the writer is done and the pty and backlog are empty
            pipeline.run(duration=0.3)
            if writer_done.is_set() and not node.backlog and node.parser.counters.frames == seen:
                break
            seen = node.parser.counters.frames
        pipeline.run(duration=1.0)
        c = node.parser.counters
        checks += [
            Check("openmv", f"node on a pty: {frames:,} fuzzed items, still running", "yes" if pipeline.context.ok()
                  else "no", "yes", pipeline.context.ok()),
            Check("openmv", "... frames parsed: published + counted as dropped (backlog full)",
                  f"{node.published} + {node.backlog_dropped} of {c.frames} ({valid} valid, {c.frames - valid} "
                  "harmless mutations)", "all", node.published + node.backlog_dropped == c.frames >= valid),
            Check("openmv", "... reached the bridge", pipeline.bridge.received, f"= published ({node.published})",
                  pipeline.bridge.received == node.published),
        ]

        # 30 fps with host stalls: the process does not spin while the camera keeps sending.
        before_published, before_received = node.published, pipeline.bridge.received
        before_dropped = node.backlog_dropped
        total = int(30 * (stalls * (stall_s + 1.0) + 1.0))
        sent: list[int] = []

        def camera() -> None:
            for seq in range(total):
                os.write(master, encode_faces(seq, seq * 33, [((100, 60, 80, 80), [0.7, 0.1, 0.05, 0.1, 0.03, 0.02])]))
                sent.append(seq)
                time.sleep(1 / 30)

        node.parser.reset_sequence()
        writer = threading.Thread(target=camera, daemon=True)
        writer.start()
        for _ in range(stalls):
            pipeline.run(duration=1.0)
            time.sleep(stall_s)
        writer.join(timeout=60)
        deadline = time.monotonic() + 30
        while (pipeline.bridge.received - before_received < total - (node.backlog_dropped - before_dropped)
               and time.monotonic() < deadline):
            pipeline.run(duration=0.3)
        received = pipeline.bridge.received - before_received
        dropped = node.backlog_dropped - before_dropped
        accounted = received + dropped
        checks += [
            Check("openmv", f"30 fps, {stalls} host stalls of {stall_s:g} s: frames sent", len(sent), str(total),
                  len(sent) == total),
            Check("openmv", "... reached the bridge + counted as dropped", f"{received} + {dropped}",
                  f"= {total}", accounted == total and node.published - before_published == received),
        ]
    finally:
        pipeline.close()
        os.close(master)
        os.close(slave)
    return checks


def openmv_part(scale: Scale) -> list[Check]:
    checks, counters = parser_fuzz(scale.fuzz_frames)
    checks.append(Check("openmv", "... parser counters", json.dumps(counters), "(for the record)", True))
    return checks + node_fuzz(scale.node_fuzz_frames, scale.stall_seconds, scale.stalls)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="the issue's full figures (about 15 minutes on 2 cores)")
    ap.add_argument("--only", choices=("api", "openmv"), help="run one part")
    ap.add_argument("--json", type=Path, help="write the checks here")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/moodstream-soak"))
    args = ap.parse_args(argv)
    scale = FULL if args.full else QUICK
    args.workdir.mkdir(parents=True, exist_ok=True)
    checks: list[Check] = []
    if args.only in (None, "openmv"):
        checks += openmv_part(scale)
    if args.only in (None, "api"):
        checks += api_part(scale, args.workdir)
    width = max(len(c.name) for c in checks)
    lines = [f"{'ok ' if c.ok else 'FAIL'} {c.name:<{width}}  {c.value}  (goal: {c.goal}"
             f"{'; wall clock, this machine' if c.timing else ''})" for c in checks]
    sys.stdout.write("\n".join(lines) + "\n")
    if args.json:
        args.json.write_text(json.dumps({"scale": "full" if args.full else "quick", "machine": os.uname().machine,
                                         "cpus": os.cpu_count(), "checks": [asdict(c) for c in checks]}, indent=1))
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
