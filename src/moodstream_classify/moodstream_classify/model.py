"""The emotion model: a TFLite file and the labels beside it (ROS-free)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from moodstream_common.preprocess import FACE_SIZE

EXPECTED_INPUT = f"float32 input of shape (N,{FACE_SIZE},{FACE_SIZE},1)"


class ModelError(RuntimeError):
    """A model or labels file that is missing, corrupt or does not fit MoodStream."""


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError as err:
            raise ModelError("no TFLite runtime found: pip install ai-edge-litert (or tflite-runtime)") from err
    return Interpreter


def default_model_path() -> Path:
    """``models/emotion.tflite`` as installed by the ``moodstream`` bringup package."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("moodstream")) / "models" / "emotion.tflite"
    except (ImportError, LookupError) as err:
        raise ModelError(
            "no model_path given and the 'moodstream' package (which installs models/emotion.tflite) "
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


class EmotionModel:
    """Runs the TFLite emotion model on batches of preprocessed faces.

    Thread-safe: one interpreter, calls serialised by a lock.
    """

    def __init__(self, model_path: str | Path, labels_path: str | Path | None = None, num_threads: int = 1) -> None:
        self.path = Path(model_path)
        if not self.path.is_file():
            raise ModelError(f"model file {self.path} does not exist")
        meta = read_metadata(self.path, Path(labels_path) if labels_path else None)
        self.labels: list[str] = meta["labels"]
        self.name = str(meta.get("name", self.path.stem))
        self.version = str(meta.get("version", "unknown"))
        self._num_threads = max(1, num_threads)
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
        # One interpreter per batch size (1, 2, 4, 8, ...): resizing a single interpreter back and
        # forth as the number of faces changes would re-prepare the graph on many frames.
        self._interpreters = {int(inp["shape"][0]): interp}
        self._lock = threading.Lock()

    def _new_interpreter(self, batch: int | None = None):
        interp = _interpreter_class()(model_path=str(self.path), num_threads=self._num_threads)
        if batch is not None:
            interp.resize_tensor_input(self._input, [batch, FACE_SIZE, FACE_SIZE, 1])
        interp.allocate_tensors()
        return interp

    def _run(self, batch: np.ndarray) -> np.ndarray:
        n = batch.shape[0]
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

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities (N, labels) for a float32 (N,48,48,1) batch in [0,1]; all faces in one call."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1:] != (FACE_SIZE, FACE_SIZE, 1):
            raise ValueError(f"model input must be (N,{FACE_SIZE},{FACE_SIZE},1), got {batch.shape}")
        if batch.shape[0] == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        with self._lock:
            if self._dynamic_batch:
                return self._run(batch)
            return np.concatenate([self._run(batch[i : i + 1]) for i in range(batch.shape[0])])
