# machine: UART (the frames), LED, WDT.
import scenario


class UART:
    def __init__(self, id, baudrate=9600, bits=8, parity=None, stop=1, *, timeout=0, timeout_char=0):
        self.id = id

    def write(self, buf):
        with open(scenario.OUT + "/uart.bin", "ab") as fh:
            fh.write(buf)
        return len(buf)


class LED:
    def __init__(self, name):
        if name not in ("LED_RED", "LED_GREEN", "LED_BLUE", "LED_IR"):
            raise ValueError("unknown LED")
        self.name = name

    def on(self):
        scenario.record("led %s on" % self.name)

    def off(self):
        pass


class WDT:
    def __init__(self, id=0, timeout=5000):
        if not 1 <= timeout <= 32000:
            raise ValueError("timeout out of range")
        import fake_time

        scenario.record("wdt %d" % timeout)
        scenario.watchdog["timeout"] = timeout
        scenario.watchdog["fed"] = fake_time.ticks_ms()

    def feed(self):
        import fake_time

        scenario.watchdog["fed"] = fake_time.ticks_ms()
