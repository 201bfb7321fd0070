# sensor: GRAYSCALE QVGA frames of the scenario; a "!" line makes snapshot() fail like a sensor
# timeout; the end of the scenario ends the run (SystemExit, which the firmware does not catch).
import fake_time
import image
import scenario

GRAYSCALE = 2
QVGA = 9
_frames = scenario.frames()
_state = {"next": 0, "pixformat": None, "framesize": None, "resets": 0}


def reset():
    _state["resets"] += 1
    scenario.record("sensor.reset")
    if _state["resets"] > scenario.MAX_STARTS:
        raise SystemExit  # the test has seen enough attempts to start


def set_pixformat(pixformat):
    _state["pixformat"] = pixformat


def set_framesize(framesize):
    _state["framesize"] = framesize


def skip_frames(n=-1, *, time=300):
    fake_time.advance(time)


def snapshot():
    if _state["pixformat"] != GRAYSCALE or _state["framesize"] != QVGA:
        raise RuntimeError("Sensor Timeout!!")  # never set up
    if _state["next"] >= len(_frames):
        raise SystemExit
    frame = _frames[_state["next"]]
    _state["next"] += 1
    fake_time.advance(scenario.FRAME_MS)
    if isinstance(frame, str):
        raise RuntimeError(frame)
    return image.Image(320, 240, frame)
