# MoodStream firmware logic for the OpenMV Cam: the UART protocol and the pure parts of the
# loop. Runs unchanged under MicroPython (on the camera) and CPython (host and tests): no
# typing, no dataclasses, no f-string format specs; camera-only calls stay in main.py.
#
# Protocol v1 (docs/openmv-protocol.md), one ASCII line per frame:
#   $MSE,1,<seq>,<t_ms>,F,<n>[;<x>,<y>,<w>,<h>,<label>,<conf>,<p0>:<p1>:...:<p5>]...*<CRC16>\n
#   $MSE,1,<seq>,<t_ms>,H,<fps_x10>*<CRC16>\n          (heartbeat: no face in view)
#   $MSE,1,<seq>,<t_ms>,E,<text>*<CRC16>\n             (error: the camera could not start)
# Probabilities and confidence are per mille (0..1000), in the order of LABELS.

PROTOCOL_VERSION = 1
START = "$MSE"
MAX_LINE = 600
LABELS = ("happy", "sad", "angry", "neutral", "surprised", "fearful")
SEQ_MODULO = 65536
FACE_SIZE = 48

#: time.ticks_ms() wraps at 2**30 ms (about 12.4 days) on the camera and the unix port alike.
TICKS_PERIOD = 1 << 30
#: The cascade built into the firmware up to 4.6.x, and the file that replaces it from 4.7 on.
BUILTIN_CASCADE = "frontalface"
ROM_CASCADE = "/rom/haarcascade_frontalface.cascade"

LED_OFF = 0
LED_RUNNING = 1  # green
LED_FACE = 2  # blue
LED_ERROR = 3  # red


def crc16(data):
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) of bytes."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            if crc & 0x8000:
                crc = ((crc << 1) ^ 0x1021) & 0xFFFF
            else:
                crc = (crc << 1) & 0xFFFF
    return crc


def frame_line(body):
    """``$<body>*<CRC>\\n`` as bytes; the CRC covers the body (between '$' and '*')."""
    raw = body.encode()
    return b"$" + raw + b"*" + ("%04X" % crc16(raw)).encode() + b"\n"


def permille(p):
    value = int(p * 1000 + 0.5)
    return 0 if value < 0 else (1000 if value > 1000 else value)


def top_index(probabilities):
    best = 0
    for i in range(1, len(probabilities)):
        if probabilities[i] > probabilities[best]:
            best = i
    return best


def encode_faces(seq, t_ms, faces):
    """``faces``: list of ((x, y, w, h), probabilities in LABELS order)."""
    parts = ["MSE,%d,%d,%d,F,%d" % (PROTOCOL_VERSION, seq % SEQ_MODULO, t_ms, len(faces))]
    for box, probs in faces:
        top = top_index(probs)
        dist = ":".join([str(permille(p)) for p in probs])
        parts.append("%d,%d,%d,%d,%s,%d,%s" % (box[0], box[1], box[2], box[3], LABELS[top],
                                                permille(probs[top]), dist))
    return frame_line(";".join(parts))


def encode_heartbeat(seq, t_ms, fps):
    return frame_line("MSE,%d,%d,%d,H,%d" % (PROTOCOL_VERSION, seq % SEQ_MODULO, t_ms, int(fps * 10 + 0.5)))


def encode_error(seq, t_ms, text):
    """An error report (start-up or a frame failed); separators are removed from the text."""
    clean = "".join([c if c not in ",;*$\n\r" else " " for c in str(text)])[:120]
    return frame_line("MSE,%d,%d,%d,E,%s" % (PROTOCOL_VERSION, seq % SEQ_MODULO, t_ms, clean))


def square_box(x, y, w, h, image_w, image_h):
    """The face box made square about its centre and kept inside the image."""
    side = max(w, h)
    side = min(side, image_w, image_h)
    cx, cy = x + w // 2, y + h // 2
    nx = min(max(0, cx - side // 2), image_w - side)
    ny = min(max(0, cy - side // 2), image_h - side)
    return nx, ny, side, side


def ticks_diff(new, old):
    """``new - old`` in ms for time.ticks_ms() values, right across the wrap at 2**30 (the same
    as MicroPython's time.ticks_diff, for the host and the tests)."""
    half = TICKS_PERIOD // 2
    return ((new - old + half) % TICKS_PERIOD) - half


def cascade_source(version):
    """What image.HaarCascade() loads on firmware ``version`` (major, minor)."""
    return BUILTIN_CASCADE if tuple(version[:2]) < (4, 7) else ROM_CASCADE


def find_features_kwargs(version, threshold, scale):
    """The keywords of img.find_features(): 5.0 renamed ``scale_factor`` to ``scale`` and rejects
    unknown keywords, while 4.x ignores them (so the wrong one would pass unnoticed)."""
    if version[0] >= 5:
        return {"threshold": threshold, "scale": scale}
    return {"threshold": threshold, "scale_factor": scale}


def largest_boxes(rects, limit):
    """The ``limit`` largest (x, y, w, h) boxes: faces are capped before the model runs on them."""
    return sorted(rects, key=lambda r: r[2] * r[3], reverse=True)[:limit]


def first(value):
    """A number, or the first of a list of them (ml.Model gives one per input tensor)."""
    if isinstance(value, (list, tuple)):
        return value[0]
    return value


def input_quantization_ok(scale, zero_point):
    """Whether an int8 input of this quantization equals what Normalization feeds it: OpenMV
    writes pixel ^ 0x80 (pixel - 128) into an int8 tensor, which is right only for 1/255, -128."""
    return abs(first(scale) - 1.0 / 255.0) < 1e-6 and int(first(zero_point)) == -128


def dequantize(values, scale, zero_point):
    return [(v - zero_point) * scale for v in values]


class Reporter:
    """Decides what goes on the wire for each camera frame: a faces frame when faces are in view,
    else a heartbeat every ``heartbeat_ms``; numbers frames with a wrapping sequence."""

    def __init__(self, heartbeat_ms=1000, max_faces=4):
        self.heartbeat_ms = heartbeat_ms
        self.max_faces = max_faces
        self.seq = 0
        self.last_sent_ms = None

    def _next_seq(self):
        seq = self.seq
        self.seq = (self.seq + 1) % SEQ_MODULO
        return seq

    def on_frame(self, now_ms, faces, fps):
        """Bytes to send for this frame (possibly empty)."""
        if faces:
            faces = sorted(faces, key=lambda f: f[0][2] * f[0][3], reverse=True)[: self.max_faces]
            self.last_sent_ms = now_ms
            return encode_faces(self._next_seq(), now_ms, faces)
        if self.last_sent_ms is None or ticks_diff(now_ms, self.last_sent_ms) >= self.heartbeat_ms:
            self.last_sent_ms = now_ms
            return encode_heartbeat(self._next_seq(), now_ms, fps)
        return b""

    def on_error(self, now_ms, error):
        """The error report for a frame that failed (or a start that failed); counts as sent."""
        self.last_sent_ms = now_ms
        return encode_error(self._next_seq(), now_ms, error)


def led_state(faces_in_view, error):
    if error:
        return LED_ERROR
    return LED_FACE if faces_in_view else LED_RUNNING
