# The scenario of one run (read from the environment) and the record of what the camera did.
import os

VERSION = tuple(int(v) for v in os.getenv("MS_VERSION", "4.8.1").split("."))
OUT = os.getenv("MS_OUT", "/tmp")
TICK_START = int(os.getenv("MS_TICK_START", "0"))
USB_OPEN = os.getenv("MS_USB", "0") == "1"
MODEL = os.getenv("MS_MODEL", "ok")
FRAME_MS = 40


def frames():
    out = []
    with open(os.getenv("MS_SCENARIO")) as fh:
        for line in fh.read().split("\n"):
            line = line.strip()
            if not line:
                continue
            if line == "-":
                out.append([])
            elif line[0] == "!":
                out.append(line[1:])
            else:
                out.append([tuple(int(v) for v in box.split(",")) for box in line.split(";")])
    return out


def record(event):
    with open(OUT + "/events.log", "a") as fh:
        fh.write(event + "\n")


def probabilities(box):
    # The scripted model: the box's width picks the leading class.
    lead = box[2] % 6
    return [0.7 if i == lead else 0.06 for i in range(6)]


# The watchdog: its timeout once started, and when it was last fed (fake_time checks it).
watchdog = {"timeout": None, "fed": 0}
MAX_STARTS = 3
