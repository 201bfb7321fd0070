# image: HaarCascade, and the Image methods the firmware uses, with each line's signature.
import scenario

BUILTIN = ("frontalface", "eye")
ROM_FILES = ("/rom/haarcascade_frontalface.cascade", "/rom/haarcascade_eye.cascade")


class HaarCascade:
    def __init__(self, path, stages=-1):
        if scenario.VERSION[:2] < (4, 7):
            if path not in BUILTIN:
                raise OSError(2)  # 4.6 has the built-in cascades and no /rom files
        elif path not in ROM_FILES:
            raise OSError(2)  # from 4.7 a cascade is a file; "frontalface" is looked up as one
        self.path, self.stages = path, stages


class Image:
    def __init__(self, w, h, faces=()):
        self._w, self._h, self.faces = w, h, list(faces)
        self.equalized = False

    def width(self):
        return self._w

    def height(self):
        return self._h

    def copy(self, *, roi=None, x_scale=1.0, y_scale=1.0, hint=0, alpha=256, color_palette=None,
             alpha_palette=None, copy_to_fb=False):
        x, y, w, h = roi if roi is not None else (0, 0, self._w, self._h)
        if x < 0 or y < 0 or x + w > self._w or y + h > self._h:
            raise ValueError("Region of interest is outside the image")
        out = Image(int(w * x_scale), int(h * y_scale))
        out.source_box = (x, y, w, h)
        return out

    def histeq(self, adaptive=False, clip_limit=-1, mask=None):
        self.equalized = True
        return self

    if scenario.VERSION[0] >= 5:
        def find_features(self, cascade, *, threshold=0.5, scale=1.5, roi=None):
            return self._found(cascade)
    else:
        def find_features(self, cascade, threshold=0.5, scale_factor=1.5, roi=None, **ignored):
            # 4.x reads the keywords it knows and ignores the rest.
            if "scale" in ignored:
                scenario.record("find_features ignored scale=")
            return self._found(cascade)

    def _found(self, cascade):
        if not isinstance(cascade, HaarCascade):
            raise TypeError("expected a HaarCascade")
        return [tuple(box) for box in self.faces]
