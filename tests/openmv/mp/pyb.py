import scenario


class USB_VCP:
    def isconnected(self):
        return scenario.USB_OPEN

    def write(self, buf):
        with open(scenario.OUT + "/usb.bin", "ab") as fh:
            fh.write(buf)
        return len(buf)
