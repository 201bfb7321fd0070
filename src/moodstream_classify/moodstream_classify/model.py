"""The emotion model: a TFLite (or ONNX) file and the labels beside it (ROS-free).

Two runtimes run the same network: TFLite (``ai_edge_litert`` or ``tflite_runtime``, what the
venv installs) and onnxruntime (what rosdep installs on a robot: ``python3-onnxruntime-pip``;
rosdep has no key for a TFLite runtime). ``models/emotion.onnx`` is exported from the same
checkpoint as ``emotion.tflite`` with the same float16 weights; the tests hold them equal.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from moodstream_common.preprocess import FACE_SIZE, LEGACY_PREPROCESSING, PREPROCESSINGS, to_model_input

EXPECTED_INPUT = f"float32 input of shape (N,{FACE_SIZE},{FACE_SIZE},1)"
#: ``runtime`` parameter values: auto takes TFLite where it imports, else the .onnx beside the model.
RUNTIMES = ("auto", "tflite", "onnx")
#: The largest number of faces the TFLite runtime runs one at a time rather than as a batch.
ONE_BY_ONE = 8
#: The package whose share folder holds ``models/`` (found through the ament resource index).
MODELS_PACKAGE = "moodstream_models"


class ModelError(RuntimeError):
    """A model or labels file that is missing, corrupt or does not fit MoodStream."""


def _tflite_interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            return None
    return Interpreter


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def resolve_runtime(model_path: Path, runtime: str = "auto") -> tuple[str, Path]:
    """The runtime to use and the file it loads, or a ModelError that says what to install."""
    if runtime not in RUNTIMES:
        raise ModelError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if model_path.suffix == ".onnx":
        if runtime == "tflite":
            raise ModelError(f"{model_path} is an ONNX model; the tflite runtime cannot load it")
        runtime = "onnx"
    if runtime == "auto":
        if _tflite_interpreter_class() is not None:
            runtime = "tflite"
        elif _onnxruntime() is not None and model_path.with_suffix(".onnx").is_file():
            runtime = "onnx"
        else:
            raise ModelError(
                f"no runtime for {model_path}: install a TFLite runtime (pip install ai-edge-litert) or "
                f"onnxruntime (rosdep key python3-onnxruntime-pip, or pip install onnxruntime) to run "
                f"{model_path.with_suffix('.onnx').name} beside it")
    if runtime == "tflite" and _tflite_interpreter_class() is None:
        raise ModelError("no TFLite runtime found: pip install ai-edge-litert (or tflite-runtime), "
                         "or set runtime to onnx")
    if runtime == "onnx":
        if _onnxruntime() is None:
            raise ModelError("runtime onnx needs onnxruntime: rosdep key python3-onnxruntime-pip "
                             "(or pip install onnxruntime)")
        model_path = model_path.with_suffix(".onnx")
    return runtime, model_path


def default_model_path() -> Path:
    """``models/emotion.tflite`` as installed by the ``moodstream_models`` package."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(MODELS_PACKAGE)) / "models" / "emotion.tflite"
    except OSError as err:  # ament_index_python: AMENT_PREFIX_PATH unset
        raise ModelError(f"no model_path given and no ament index to find {MODELS_PACKAGE} in ({err}): "
                         "source the workspace's install/setup.bash, or set model_path") from err
    except (ImportError, LookupError) as err:
        raise ModelError(
            f"no model_path given and the '{MODELS_PACKAGE}' package (which installs models/emotion.tflite) "
            "is not installed; set model_path or install it"
        ) from err


def read_metadata(model_path: Path, labels_path: Path | None = None) -> dict:
    """Labels (and model facts) from ``labels_path`` or the ``.json`` / ``.txt`` beside the model."""
    candidates = [labels_path] if labels_path else [model_path.with_suffix(".json"), model_path.with_suffix(".txt")]
    for path in candidates:
        if path is None or not path.is_file():
            continue
        if path.suffix == ".json":
            try:
                meta = json.loads(path.read_text())
            except (OSError, ValueError) as err:
                raise ModelError(f"labels file {path} is not valid JSON: {err}") from err
            labels = meta.get("labels") if isinstance(meta, dict) else None
        else:
            meta = {}
            labels = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if not labels or not all(isinstance(x, str) and x for x in labels):
            raise ModelError(f"labels file {path} holds no list of label names")
        return {**meta, "labels": list(labels)}
    raise ModelError(
        f"no labels for {model_path}: expected {model_path.with_suffix('.json')} (with a 'labels' list) "
        f"or {model_path.with_suffix('.txt')} (one label a line)"
    )


def temperature_of(meta: dict, model_path: Path) -> float:
    """The temperature in a model's JSON (``"confidence_calibration": {"temperature": T}``), else 1."""
    calibration = meta.get("confidence_calibration")
    if calibration is None:
        return 1.0
    value = calibration.get("temperature") if isinstance(calibration, dict) else None
    if not isinstance(value, (int, float)) or not 0.05 <= value <= 20:
        raise ModelError(f"{model_path.with_suffix('.json')}: confidence_calibration.temperature must be a number in "
                         f"[0.05, 20], got {value!r}")
    return float(value)


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature scaling of softmax outputs: softmax(log(p) / T), rows summing to 1."""
    if temperature == 1.0:
        return probabilities
    logits = np.log(np.clip(probabilities, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    scaled = np.exp(logits)
    return (scaled / scaled.sum(axis=-1, keepdims=True)).astype(np.float32)


class EmotionModel:
    """Runs the emotion model (TFLite or ONNX) on batches of preprocessed faces.

    Thread-safe: calls serialised by a lock.
    """

    def __init__(self, model_path: str | Path, labels_path: str | Path | None = None, num_threads: int = 1,
                 runtime: str = "auto") -> None:
        requested = Path(model_path)
        if not requested.is_file():
            raise ModelError(f"model file {requested} does not exist")
        self.runtime, self.path = resolve_runtime(requested, runtime)
        if not self.path.is_file():
            raise ModelError(f"runtime {self.runtime} needs {self.path}, which does not exist")
        meta = read_metadata(self.path, Path(labels_path) if labels_path else None)
        self.labels: list[str] = meta["labels"]
        self.name = str(meta.get("name", self.path.stem))
        self.version = str(meta.get("version", "unknown"))
        self.preprocess = str(meta.get("preprocess", LEGACY_PREPROCESSING))
        if self.preprocess not in PREPROCESSINGS:
            raise ModelError(f"{self.path.with_suffix('.json')} asks for the preprocessing {self.preprocess!r}, which "
                             f"this MoodStream does not implement (it knows {', '.join(PREPROCESSINGS)}): update "
                             "MoodStream, or use a model made for it")
        self.temperature = temperature_of(meta, self.path)
        self._num_threads = max(1, num_threads)
        self._lock = threading.Lock()
        if self.runtime == "onnx":
            self._init_onnx()
            return
        try:
            interp = self._new_interpreter()
        except ModelError:
            raise
        except Exception as err:  # the runtimes raise ValueError or RuntimeError for a bad file
            raise ModelError(f"{self.path} is not a loadable TFLite model ({err}); expected a .tflite file "
                             f"with an {EXPECTED_INPUT}") from err
        inputs, outputs = interp.get_input_details(), interp.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{self.path} has {len(inputs)} inputs and {len(outputs)} outputs; expected 1 and 1")
        inp, out = inputs[0], outputs[0]
        if inp["dtype"] not in (np.float32, np.int8, np.uint8) or list(inp["shape"][1:]) != [FACE_SIZE, FACE_SIZE, 1]:
            raise ModelError(f"{self.path} takes {inp['dtype'].__name__} {tuple(inp['shape'])}; "
                             f"MoodStream feeds a {EXPECTED_INPUT}")
        if int(out["shape"][-1]) != len(self.labels):
            raise ModelError(f"{self.path} gives {int(out['shape'][-1])} outputs but its labels file names "
                             f"{len(self.labels)} labels ({', '.join(self.labels)})")
        self._input, self._output = inp["index"], out["index"]
        # Fully quantised models (the OpenMV camera's int8 model) take and give integers.
        self._in_dtype, self._in_q = inp["dtype"], inp["quantization"]
        self._out_dtype, self._out_q = out["dtype"], out["quantization"]
        self.quantized = self._in_dtype != np.float32
        self._dynamic_batch = int(inp.get("shape_signature", inp["shape"])[0]) == -1
        # A frame's faces (up to ONE_BY_ONE) go through one batch-1 interpreter one at a time: as
        # fast as a batch here (3.21 against 3.13 ms for two faces, 4.69 against 6.45 for three,
        # padded to four), and each interpreter of another batch size would hold 10 MB more (its
        # own unpacked weights). Larger batches (evaluation) get one interpreter per power of two:
        # resizing a single one back and forth would re-prepare the graph each time.
        self._interpreters = {int(inp["shape"][0]): interp}

    def _init_onnx(self) -> None:
        ort = _onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = self._num_threads, 1
        try:
            self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own Fail / InvalidProtobuf for a bad file
            raise ModelError(f"{self.path} is not a loadable ONNX model ({err}); expected an {EXPECTED_INPUT}") from err
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(f"{self.path} has {len(inputs)} inputs and {len(outputs)} outputs; expected 1 and 1")
        shape = list(inputs[0].shape)
        if inputs[0].type != "tensor(float)" or shape[1:] != [FACE_SIZE, FACE_SIZE, 1]:
            raise ModelError(f"{self.path} takes {inputs[0].type} {tuple(shape)}; MoodStream feeds a {EXPECTED_INPUT}")
        if outputs[0].shape[-1] != len(self.labels):
            raise ModelError(f"{self.path} gives {outputs[0].shape[-1]} outputs but its labels file names "
                             f"{len(self.labels)} labels ({', '.join(self.labels)})")
        self._input_name = inputs[0].name
        self.quantized = False
        self._dynamic_batch = not isinstance(shape[0], int)

    def _new_interpreter(self, batch: int | None = None):
        interp = _tflite_interpreter_class()(model_path=str(self.path), num_threads=self._num_threads)
        if batch is not None:
            interp.resize_tensor_input(self._input, [batch, FACE_SIZE, FACE_SIZE, 1])
        interp.allocate_tensors()
        return interp

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if self.runtime == "onnx":
            return self._session.run(None, {self._input_name: batch})[0]
        n = batch.shape[0]
        if 1 < n <= ONE_BY_ONE and 1 in self._interpreters:
            return np.concatenate([self._run(batch[i : i + 1]) for i in range(n)])
        size = 1 << (n - 1).bit_length() if self._dynamic_batch else 1
        interp = self._interpreters.get(size)
        if interp is None:
            interp = self._interpreters[size] = self._new_interpreter(size)
        if size != n:
            batch = np.concatenate([batch, np.zeros((size - n, *batch.shape[1:]), np.float32)])
        if self.quantized:
            scale, zero = self._in_q
            info = np.iinfo(self._in_dtype)
            batch = np.clip(np.round(batch / scale) + zero, info.min, info.max).astype(self._in_dtype)
        interp.set_tensor(self._input, batch)
        interp.invoke()
        out = interp.get_tensor(self._output)[:n]
        if self._out_dtype != np.float32:
            scale, zero = self._out_q
            return ((out.astype(np.float32) - zero) * scale).astype(np.float32)
        return out.copy()

    def predict_faces(self, crops) -> np.ndarray:
        """Calibrated probabilities (N, labels) of 48x48 uint8 face crops, preprocessed the way the
        model's JSON says: what every MoodStream path that classifies a face calls."""
        return self.predict(to_model_input(crops, self.preprocess))

    def predict(self, batch: np.ndarray, calibrated: bool = True) -> np.ndarray:
        """Probabilities (N, labels) for a float32 (N,48,48,1) batch in [0,1]; all faces in one call.
        ``calibrated``: with the temperature of the model's JSON (False: the network's own softmax)."""
        raw = self._predict_raw(batch)
        return apply_temperature(raw, self.temperature) if calibrated else raw

    def _predict_raw(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1:] != (FACE_SIZE, FACE_SIZE, 1):
            raise ValueError(f"model input must be (N,{FACE_SIZE},{FACE_SIZE},1), got {batch.shape}")
        if batch.shape[0] == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        with self._lock:
            if self._dynamic_batch:
                return self._run(batch)
            return np.concatenate([self._run(batch[i : i + 1]) for i in range(batch.shape[0])])
