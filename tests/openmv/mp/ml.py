# ml (4.5.6 on): Model and preprocessing.Normalization; the model's output is scripted.
import scenario


class _Output:
    def __init__(self, values):
        self.values = values

    def flatten(self):
        return self

    def tolist(self):
        return list(self.values)


class Model:
    def __init__(self, path, load_to_fb=False):
        if scenario.MODEL == "missing" or path != "/emotion_camera.tflite":
            raise OSError(2)
        self.input_scale = [1.0 / 255.0] if scenario.MODEL != "badquant" else [0.0078125]
        self.input_zero_point = [-128] if scenario.MODEL != "badquant" else [0]
        self.output_shape = [(1, 6)]

    def predict(self, inputs, *, callback=None):
        if len(inputs) != 1 or not isinstance(inputs[0], _Prepared):
            raise TypeError("one input expected")
        face = inputs[0].image
        if not face.equalized:
            raise AssertionError("the face was not equalized (the host equalizes every crop)")
        scenario.record("predict %d,%d,%d,%d" % face.source_box)
        return [_Output(scenario.probabilities(face.source_box))]


class _Prepared:
    def __init__(self, image):
        self.image = image


class _Preprocessing:
    class Normalization:
        def __init__(self, scale=(0.0, 1.0), mean=(0.0, 0.0, 0.0), stdev=(1.0, 1.0, 1.0), roi=None):
            self.scale, self.roi = scale, roi

        def __call__(self, image):
            return _Prepared(image)


preprocessing = _Preprocessing()
