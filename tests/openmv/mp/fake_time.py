# time as on the camera: ticks_ms() wraps at 2**30; the clock only moves when frames are taken
# or the firmware sleeps, so that a run is the same every time.
import scenario

PERIOD = 1 << 30
_now = [scenario.TICK_START]


def advance(ms):
    _now[0] = (_now[0] + ms) % PERIOD
    dog = scenario.watchdog
    if dog["timeout"] is not None and ticks_diff(_now[0], dog["fed"]) > dog["timeout"]:
        scenario.record("watchdog reset")
        raise SystemExit  # the camera resets; main.py would run again from the start


def ticks_ms():
    return _now[0]


def ticks_diff(new, old):
    half = PERIOD // 2
    return ((new - old + half) % PERIOD) - half


def ticks_add(ticks, delta):
    return (ticks + delta) % PERIOD


def sleep_ms(ms):
    advance(ms)


def sleep(seconds):
    advance(int(seconds * 1000))


class clock:
    def __init__(self):
        self.ticks = 0

    def tick(self):
        self.ticks += 1

    def fps(self):
        return 12.5
