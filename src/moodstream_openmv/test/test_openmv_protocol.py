"""The OpenMV UART protocol: the firmware's encoder against the host's parser, and fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moodstream_openmv import firmware_protocol as fw
from moodstream_openmv.protocol import BareLabel, CameraError, FacesFrame, Heartbeat, LineParser

PROBS = [0.71, 0.05, 0.04, 0.1, 0.06, 0.04]


def test_crc16_ccitt_false_check_value():
    assert fw.crc16(b"123456789") == 0x29B1


def test_faces_frame_round_trip():
    line = fw.encode_faces(7, 123456, [((10, 20, 64, 64), PROBS), ((200, 30, 40, 40), PROBS[::-1])])
    assert line.startswith(b"$MSE,1,7,123456,F,2;10,20,64,64,happy,710,710:50:40:100:60:40;") and line.endswith(b"\n")
    (event,) = LineParser().feed(line)
    assert isinstance(event, FacesFrame) and (event.seq, event.t_ms) == (7, 123456)
    a, b = event.faces
    assert a.box == (10, 20, 64, 64) and a.label == "happy" and a.confidence == 0.71
    assert a.probabilities == (0.71, 0.05, 0.04, 0.1, 0.06, 0.04)
    assert b.label == "fearful" and b.confidence == 0.71


def test_heartbeat_error_and_bare_labels():
    parser = LineParser()
    events = parser.feed(fw.encode_heartbeat(1, 50, 17.26) + fw.encode_error(2, 60, "no model, file;*$ missing")
                         + b"happy\r\nSAD\n")
    assert events[0] == Heartbeat(1, 50, 17.3)
    assert isinstance(events[1], CameraError) and events[1].message == "no model  file    missing"
    assert events[2:] == [BareLabel("happy"), BareLabel("sad")]
    strict = LineParser(accept_bare_labels=False)
    assert strict.feed(b"happy\n") == [] and strict.counters.garbage_bytes == 5


def test_resync_after_garbage_and_a_lost_byte_and_counts():
    parser = LineParser()
    good = [fw.encode_faces(i, i * 33, [((5, 5, 50, 50), PROBS)]) for i in range(5)]
    damaged = good[1][:20] + good[1][21:]  # one byte lost
    stream = b"\x00\xffnoise" + good[0] + damaged + b"garbage$MS" + good[2] + good[4]
    events = parser.feed(stream)
    assert [e.seq for e in events] == [0, 2, 4]
    c = parser.counters
    assert c.frames == 3 and c.dropped == 2 and c.checksum_errors + c.malformed >= 1 and c.garbage_bytes > 0


def test_sequence_wraps_and_duplicates_are_dropped():
    parser = LineParser()
    lines = [fw.encode_heartbeat(s, 0, 1) for s in (65534, 65535, 0, 0, 1)]
    assert [e.seq for e in parser.feed(b"".join(lines))] == [65534, 65535, 0, 1]
    assert parser.counters.dropped == 0 and parser.counters.duplicates == 1


def test_reporter_sends_faces_else_heartbeats():
    r = fw.Reporter(heartbeat_ms=1000, max_faces=1)
    assert r.on_frame(0, [], 10.0).startswith(b"$MSE,1,0,0,H,100*")
    assert r.on_frame(500, [], 10.0) == b""
    faces = [((0, 0, 10, 10), PROBS), ((0, 0, 30, 30), PROBS)]
    line = r.on_frame(600, faces, 10.0)
    assert b",F,1;0,0,30,30," in line  # only the largest face
    assert r.on_frame(1500, [], 10.0) == b""  # the faces frame counted as a sign of life
    assert r.on_frame(1600, [], 10.0).startswith(b"$MSE,1,2,1600,H")


def test_square_box_and_led_state():
    assert fw.square_box(10, 10, 20, 40, 320, 240) == (0, 10, 40, 40)
    assert fw.square_box(300, 220, 40, 40, 320, 240) == (280, 200, 40, 40)
    assert fw.led_state(0, False) == fw.LED_RUNNING and fw.led_state(2, False) == fw.LED_FACE
    assert fw.led_state(2, True) == fw.LED_ERROR


# -- fuzzing: whatever arrives, the parser never crashes and reports only what was sent -------------

face = st.tuples(st.tuples(*[st.integers(0, 400)] * 2, st.integers(1, 200), st.integers(1, 200)),
                 st.lists(st.floats(0, 1), min_size=6, max_size=6))
frame = st.one_of(
    st.builds(lambda seq, t, faces: fw.encode_faces(seq, t, faces), st.integers(0, 65535), st.integers(0, 2**30),
              st.lists(face, min_size=1, max_size=4)),
    st.builds(fw.encode_heartbeat, st.integers(0, 65535), st.integers(0, 2**30), st.floats(0, 200)),
)


def sent_events(lines: list[bytes]) -> list:
    """Each sent line's event, parsed on its own (so no line is taken for another's duplicate)."""
    return [e for line in lines for e in LineParser().feed(line)]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_never_crash_or_invent(data):
    parser = LineParser(accept_bare_labels=False)
    assert parser.feed(data) == []  # a random line passes the CRC and the body checks almost never


@settings(max_examples=300, deadline=None)
@given(st.lists(frame, min_size=1, max_size=6), st.data())
def test_damaged_streams_yield_only_sent_frames(lines, data):
    sent = sent_events(lines)
    stream = bytearray()
    for line in lines:
        action = data.draw(st.sampled_from(["keep", "truncate", "duplicate", "flip", "drop"]))
        if action == "truncate":
            line = line[: data.draw(st.integers(0, len(line) - 1))]
        elif action == "duplicate":
            line = line + line
        elif action == "flip":
            i = data.draw(st.integers(0, len(line) - 1))
            line = line[:i] + bytes([line[i] ^ (1 << data.draw(st.integers(0, 7)))]) + line[i + 1 :]
        elif action == "drop":
            continue
        stream += line
    parser = LineParser(accept_bare_labels=False)
    chunks = data.draw(st.lists(st.integers(1, 64), max_size=40))
    got, pos = [], 0
    for size in chunks:
        got += parser.feed(bytes(stream[pos : pos + size]))
        pos += size
    got += parser.feed(bytes(stream[pos:]))
    for event in got:
        assert event in sent, event


# -- hostile input with valid checksums (regressions of issue 13, D1) ---------------------------------
def line(body: str) -> bytes:
    return fw.frame_line(body)


FACE = "10,20,64,64,happy,710,710:50:40:100:60:40"


@pytest.mark.parametrize("body", [
    "MSE,1,7," + "9" * 5000 + ",F,1;" + FACE,  # int() refuses more than 4300 digits
    "MSE,1,7,123,F,1;10,20,64,64,happy,710,710:50:40:100:60:" + "1" * 20,
    "MSE,1,7,123,F,1;10,20,64,64,happy,0,0:0:0:0:0:0",  # probabilities summing to 0
    "MSE,1,7,123,F,1;10,20,64,64,happy,1000,1000:1000:1000:1000:1000:1000",  # ... to 6
    "MSE,1,7,12\u00b3,F,1;" + FACE,  # a digit that int() does not take
    "MSE,1,7,123,H,\u0661\u0662",  # Arabic-Indic digits
])
def test_absurd_values_with_a_valid_checksum_are_counted_never_raised(body):
    parser = LineParser()
    assert parser.feed(line(body)) == []
    assert parser.counters.malformed == 1 and parser.counters.frames == 0
    assert parser.feed(line("MSE,1,8,124,F,1;" + FACE))  # and the next good frame is read


def test_the_line_limit_holds_however_the_line_arrives():
    long_line = line("MSE,1,7,123,E," + "x" * 700)
    parser = LineParser()
    events = parser.feed(long_line[:300]) + parser.feed(long_line[300:])  # the newline comes in the second chunk
    assert events == [] and parser.counters.malformed == 1
    assert parser.feed(line("MSE,1,8,124,H,300"))
