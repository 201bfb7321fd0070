# MoodStream firmware for the OpenMV Cam H7 Plus (current OpenMV firmware, `ml` module).
# Camera-only calls live here; the protocol and the decisions live in moodstream_fw.py.
# Copy main.py, moodstream_fw.py, emotion_int8.tflite to the camera's drive (README.md).

import time

import image
import ml
import moodstream_fw as fw
import sensor
from machine import LED, UART

UART_PORT = 3  # UART3: P4 = TX, P5 = RX
UART_BAUD = 115200
MODEL_PATH = "/emotion_int8.tflite"
HAAR_STAGES = 25
HAAR_THRESHOLD = 0.75
HAAR_SCALE = 1.25

leds = {fw.LED_RUNNING: LED("LED_GREEN"), fw.LED_FACE: LED("LED_BLUE"), fw.LED_ERROR: LED("LED_RED")}


def show(state):
    for key, led in leds.items():
        if key == state:
            led.on()
        else:
            led.off()


def classify(model, norm, img, rect):
    x, y, w, h = fw.square_box(rect[0], rect[1], rect[2], rect[3], img.width(), img.height())
    face = img.copy(roi=(x, y, w, h), x_size=fw.FACE_SIZE, y_size=fw.FACE_SIZE)
    output = model.predict([norm(face)])[0].flatten().tolist()
    return (x, y, w, h), output


def main():
    uart = UART(UART_PORT, UART_BAUD, timeout_char=1000)
    try:
        sensor.reset()
        sensor.set_pixformat(sensor.GRAYSCALE)
        sensor.set_framesize(sensor.QVGA)
        sensor.skip_frames(time=2000)
        cascade = image.HaarCascade("frontalface", stages=HAAR_STAGES)
        model = ml.Model(MODEL_PATH, load_to_fb=True)
        norm = ml.preprocessing.Normalization(scale=(0.0, 1.0))
    except Exception as err:
        show(fw.LED_ERROR)
        uart.write(fw.encode_error(0, time.ticks_ms(), err))
        raise
    reporter = fw.Reporter()
    clock = time.clock()
    while True:
        clock.tick()
        img = sensor.snapshot()
        faces = []
        for rect in img.find_features(cascade, threshold=HAAR_THRESHOLD, scale_factor=HAAR_SCALE):
            faces.append(classify(model, norm, img, rect))
        show(fw.led_state(len(faces), False))
        line = reporter.on_frame(time.ticks_ms(), faces, clock.fps())
        if line:
            uart.write(line)


main()
