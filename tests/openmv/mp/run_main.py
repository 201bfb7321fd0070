# micropython run_main.py FIRMWARE_DIR: firmware/openmv/main.py with the stand-ins in place.
import sys

HERE = sys.argv[0].rsplit("/", 1)[0]
sys.path.insert(0, HERE)
sys.path.insert(0, sys.argv[1])
import fake_time  # noqa: E402

sys.modules["time"] = fake_time
try:
    import main  # noqa: F401  (runs the firmware)
except SystemExit:
    pass
