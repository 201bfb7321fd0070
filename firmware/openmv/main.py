# MoodStream firmware for the OpenMV Cam H7 Plus, OpenMV firmware 4.5.6 to 5.0 (`ml` module).
# Camera-only calls live here; the protocol and the decisions live in moodstream_fw.py.
# Copy main.py, moodstream_fw.py, emotion_camera.tflite to the camera's drive (README.md).
#
# Recovery: each frame runs inside a try; a failure is reported over the protocol (an E frame)
# and the loop goes on. The watchdog is fed once a frame: a hang, or too many failures in a
# row, resets the camera, and main.py runs again. LEDs: green running, blue face in view,
# red error.

import time

import image
import ml
import moodstream_fw as fw
import omv
import sensor
from machine import LED, UART, WDT

UART_PORT = 3  # UART3: P4 = TX, P5 = RX (a USB-serial adapter, or the robot's UART)
UART_BAUD = 115200
USB_LINK = True  # also send the frames on the USB virtual COM port while a host has it open
MODEL_PATH = "/emotion_camera.tflite"
HAAR_STAGES = 25
HAAR_THRESHOLD = 0.75
HAAR_SCALE = 1.25
MAX_FACES = 4  # the largest faces of a frame; the rest are not classified
HEARTBEAT_MS = 1000
WATCHDOG_MS = 8000
START_RETRY_MS = 2000
MAX_FAILURES_IN_A_ROW = 20

leds = {fw.LED_RUNNING: LED("LED_GREEN"), fw.LED_FACE: LED("LED_BLUE"), fw.LED_ERROR: LED("LED_RED")}


def show(state):
    for key, led in leds.items():
        if key == state:
            led.on()
        else:
            led.off()


class Links:
    """UART3 always; the USB virtual COM port too when USB_LINK is set and a host listens."""

    def __init__(self):
        self.uart = UART(UART_PORT, UART_BAUD, timeout_char=1000)
        self.usb = None
        if USB_LINK:
            try:
                import pyb

                self.usb = pyb.USB_VCP()
            except ImportError:
                self.usb = None

    def write(self, data):
        if not data:
            return
        self.uart.write(data)
        if self.usb is not None and self.usb.isconnected():
            self.usb.write(data)


def firmware_version():
    return (omv.version_major(), omv.version_minor())


def start(version):
    sensor.reset()
    sensor.set_pixformat(sensor.GRAYSCALE)
    sensor.set_framesize(sensor.QVGA)
    sensor.skip_frames(time=2000)
    cascade = image.HaarCascade(fw.cascade_source(version), stages=HAAR_STAGES)
    model = ml.Model(MODEL_PATH, load_to_fb=True)
    if not fw.input_quantization_ok(model.input_scale, model.input_zero_point):
        raise ValueError("model input quantization %s %s is not 1/255 -128" % (
            fw.first(model.input_scale), fw.first(model.input_zero_point)))
    return cascade, model


def classify(model, img, rect):
    """The face cut out and scaled to the model's input, equalized as the host does, classified."""
    x, y, w, h = fw.square_box(rect[0], rect[1], rect[2], rect[3], img.width(), img.height())
    face = img.copy(roi=(x, y, w, h), x_scale=fw.FACE_SIZE / w, y_scale=fw.FACE_SIZE / h)
    face.histeq()
    output = model.predict([ml.preprocessing.Normalization()(face)])[0].flatten().tolist()
    return (x, y, w, h), output


def main():
    links = Links()
    reporter = fw.Reporter(heartbeat_ms=HEARTBEAT_MS, max_faces=MAX_FACES)
    version = firmware_version()
    wdt = WDT(timeout=WATCHDOG_MS)
    while True:  # start, and try again while it fails (a loose sensor cable, a missing model)
        try:
            cascade, model = start(version)
            break
        except Exception as err:
            show(fw.LED_ERROR)
            links.write(reporter.on_error(time.ticks_ms(), "start: %s" % err))
            wdt.feed()
            time.sleep_ms(START_RETRY_MS)
            wdt.feed()
    find_kwargs = fw.find_features_kwargs(version, HAAR_THRESHOLD, HAAR_SCALE)
    clock = time.clock()
    failures = 0
    while True:
        clock.tick()
        try:
            img = sensor.snapshot()
            rects = fw.largest_boxes(img.find_features(cascade, **find_kwargs), MAX_FACES)
            faces = [classify(model, img, rect) for rect in rects]
            show(fw.led_state(len(faces), False))
            links.write(reporter.on_frame(time.ticks_ms(), faces, clock.fps()))
            failures = 0
        except Exception as err:  # a sensor timeout, a MemoryError: reported, and the next frame
            failures += 1
            show(fw.LED_ERROR)
            links.write(reporter.on_error(time.ticks_ms(), err))
            if failures >= MAX_FAILURES_IN_A_ROW:
                while True:  # stop feeding the watchdog: it resets the camera, main.py runs again
                    time.sleep_ms(100)
        wdt.feed()


main()
