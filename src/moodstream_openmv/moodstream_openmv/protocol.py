"""Host side of the OpenMV UART protocol (ROS-free): bytes in, validated frames out.

The encoder and the CRC are the firmware's own module (``firmware_protocol``, the same file as
``firmware/openmv/moodstream_fw.py``). The parser resynchronises on ``$`` and newline, so
garbage, a lost byte or a cut line costs at most the frames it touches; a frame is accepted only
with a matching CRC and a well-formed body, so nothing that was not sent is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .firmware_protocol import LABELS, MAX_LINE, PROTOCOL_VERSION, SEQ_MODULO, crc16


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]
    label: str
    confidence: float
    probabilities: tuple[float, ...]


@dataclass(frozen=True)
class FacesFrame:
    seq: int
    t_ms: int
    faces: tuple[Face, ...]


@dataclass(frozen=True)
class Heartbeat:
    seq: int
    t_ms: int
    fps: float


@dataclass(frozen=True)
class CameraError:
    seq: int
    t_ms: int
    message: str


@dataclass(frozen=True)
class BareLabel:
    """A line of the original firmware: the label alone."""

    label: str


Event = FacesFrame | Heartbeat | CameraError | BareLabel


@dataclass
class LinkCounters:
    frames: int = 0
    checksum_errors: int = 0
    malformed: int = 0
    dropped: int = 0  # frames missing between sequence numbers
    garbage_bytes: int = 0
    bare_lines: int = 0
    duplicates: int = 0


class ProtocolError(ValueError):
    pass


#: The longest number any field holds (t_ms < 2**40 has 13 digits); longer is never parsed.
MAX_DIGITS = 13
#: The firmware sends probabilities in thousandths, each rounded, from an int8 softmax (steps of
#: 1/256): their sum is 1000 within this.
PROBABILITY_SUM_TOLERANCE = 30


def _int(text: str, lo: int, hi: int) -> int:
    if not (0 < len(text) <= MAX_DIGITS and text.isascii() and text.isdigit()):
        raise ProtocolError(f"not a number of at most {MAX_DIGITS} digits: {text[:20]!r}")
    value = int(text)
    if not lo <= value <= hi:
        raise ProtocolError(f"{value} outside [{lo}, {hi}]")
    return value


def parse_body(body: str) -> FacesFrame | Heartbeat | CameraError:
    """The part between ``$`` and ``*`` of a line whose CRC matched."""
    head, _, rest = body.partition(";")
    fields = head.split(",")
    if len(fields) != 6 or fields[0] != "MSE":
        raise ProtocolError("bad header")
    if _int(fields[1], 0, 99) != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {fields[1]} is not {PROTOCOL_VERSION}")
    seq, t_ms = _int(fields[2], 0, SEQ_MODULO - 1), _int(fields[3], 0, 2**40)
    kind, value = fields[4], fields[5]
    if kind == "H":
        if rest:
            raise ProtocolError("heartbeat with faces")
        return Heartbeat(seq, t_ms, _int(value, 0, 100000) / 10.0)
    if kind == "E":
        return CameraError(seq, t_ms, value + (";" + rest if rest else ""))
    if kind != "F":
        raise ProtocolError(f"unknown frame type {kind!r}")
    count = _int(value, 1, 32)
    parts = rest.split(";") if rest else []
    if len(parts) != count:
        raise ProtocolError(f"{count} faces announced, {len(parts)} sent")
    faces = []
    for part in parts:
        f = part.split(",")
        if len(f) != 7:
            raise ProtocolError("a face needs 7 fields")
        box = tuple(_int(v, 0, 65535) for v in f[:4])
        if box[2] == 0 or box[3] == 0:
            raise ProtocolError("empty face box")
        if f[4] not in LABELS:
            raise ProtocolError(f"unknown label {f[4]!r}")
        probs = [_int(v, 0, 1000) for v in f[6].split(":")]
        if len(probs) != len(LABELS):
            raise ProtocolError(f"{len(probs)} probabilities, expected {len(LABELS)}")
        if abs(sum(probs) - 1000) > PROBABILITY_SUM_TOLERANCE:
            raise ProtocolError(f"probabilities sum to {sum(probs) / 1000:.3f}, not 1")
        conf = _int(f[5], 0, 1000)
        top = LABELS.index(f[4])
        if conf != probs[top] or probs[top] < max(probs):
            raise ProtocolError("label and confidence disagree with the distribution")
        faces.append(Face(box, f[4], conf / 1000.0, tuple(p / 1000.0 for p in probs)))
    return FacesFrame(seq, t_ms, tuple(faces))


@dataclass
class LineParser:
    """Feed it bytes as they arrive; it returns the events of every complete, valid line."""

    accept_bare_labels: bool = True
    counters: LinkCounters = field(default_factory=LinkCounters)
    _buffer: bytearray = field(default_factory=bytearray)
    _last_seq: int | None = None

    def reset_sequence(self) -> None:
        """After a reconnect: the camera may have restarted its numbering."""
        self._last_seq = None
        self._buffer.clear()

    def feed(self, data: bytes) -> list[Event]:
        self._buffer.extend(data)
        events: list[Event] = []
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                if len(self._buffer) > MAX_LINE:  # no line end in sight: drop what cannot be a frame
                    keep = self._buffer.rfind(b"$")
                    cut = keep if keep > 0 else len(self._buffer)
                    self.counters.garbage_bytes += cut
                    del self._buffer[:cut]
                    if len(self._buffer) > MAX_LINE:
                        self.counters.garbage_bytes += len(self._buffer)
                        self._buffer.clear()
                return events
            line = bytes(self._buffer[:newline])
            del self._buffer[: newline + 1]
            if len(line) > MAX_LINE:  # however it arrived, a line this long is not a frame
                self.counters.malformed += 1
                self.counters.garbage_bytes += len(line) + 1
                continue
            event = self._line(line.rstrip(b"\r"))
            if event is not None:
                events.append(event)

    def _line(self, line: bytes) -> Event | None:
        start = line.rfind(b"$")
        if start < 0:
            return self._bare(line)
        if start > 0:
            self.counters.garbage_bytes += start
            line = line[start:]
        body, star, crc = line[1:].rpartition(b"*")
        if not star or len(crc) != 4:
            self.counters.malformed += 1
            return None
        try:
            crc_value = int(crc, 16)
        except ValueError:
            self.counters.malformed += 1
            return None
        if crc16(body) != crc_value:
            self.counters.checksum_errors += 1
            return None
        try:
            event = parse_body(body.decode("ascii"))
        except (ProtocolError, ValueError):  # UnicodeDecodeError is a ValueError; whatever it was, a bad frame
            self.counters.malformed += 1
            return None
        if event.seq == self._last_seq:
            self.counters.duplicates += 1
            return None
        self._count(event.seq)
        return event

    def _count(self, seq: int) -> None:
        self.counters.frames += 1
        if self._last_seq is not None:
            gap = (seq - self._last_seq - 1) % SEQ_MODULO
            if gap < SEQ_MODULO // 2:  # a repeated or older frame is not a loss
                self.counters.dropped += gap
        self._last_seq = seq

    def _bare(self, line: bytes) -> Event | None:
        text = line.strip().decode("ascii", errors="replace").lower()
        if self.accept_bare_labels and text in LABELS:
            self.counters.bare_lines += 1
            return BareLabel(text)
        if text:
            self.counters.garbage_bytes += len(line)
        return None
