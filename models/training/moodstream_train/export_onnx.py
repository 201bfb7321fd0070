"""Export a trained EmotionNet checkpoint to ONNX, the runtime a ROS install gets through rosdep.

    python -m moodstream_train.export_onnx checkpoints/student_swa.pt --tflite ../emotion.tflite \
        --out ../emotion.onnx

rosdep has no key for a TFLite runtime but has ``python3-onnxruntime-pip``, so the classify
node runs this file with onnxruntime wherever ``ai_edge_litert`` / ``tflite_runtime`` are
missing. The graph is the float16 TFLite model's, op for op: the same input (float32 in [0,1],
shape (N,48,48,1), NHWC), batch norm folded into each convolution, and the folded weights
rounded through float16 exactly as the TFLite converter stores them, so both files give the
same probabilities (checked here against the ``.tflite`` and in the test suite). ``--flip-tta``
averages with the mirror image, as the ``.tflite`` exported with flip averaging does: the face and
its mirror image go through the network as one batch of twice the size.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

from .data import LABELS
from .train import load_checkpoint

log = logging.getLogger("moodstream_train.export_onnx")
OPSET = 13


def folded_layers(model) -> list[tuple[str, np.ndarray | None, np.ndarray | None]]:
    """('conv', W, b) with batch norm folded in, ('pool', None, None), then ('dense', W, b)."""
    out: list[tuple[str, np.ndarray | None, np.ndarray | None]] = []
    layers = list(model.features)
    for i, layer in enumerate(layers):
        if isinstance(layer, torch.nn.Conv2d):
            bn = layers[i + 1]
            assert isinstance(bn, torch.nn.BatchNorm2d), "every conv is followed by batch norm"
            scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double()
            weight = layer.weight.detach().double() * scale[:, None, None, None]
            bias = bn.bias.detach().double() - bn.running_mean.detach().double() * scale
            out.append(("conv", weight.numpy(), bias.numpy()))
        elif isinstance(layer, torch.nn.MaxPool2d):
            out.append(("pool", None, None))
    out.append(("dense", model.classifier.weight.detach().double().numpy(),
                model.classifier.bias.detach().double().numpy()))
    return out


def as_float16_weights(array: np.ndarray) -> np.ndarray:
    """float32 values that float16 can hold: what the float16 .tflite computes with."""
    return array.astype(np.float16).astype(np.float32)


def build_onnx(model, name: str, flip_tta: bool = False):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Transpose", ["input"], ["x0"], perm=[0, 3, 1, 2])]
    inits = []
    x = "x0"
    if flip_tta:  # (N,1,H,W) -> (2N,1,H,W): the faces, then their mirror images (W read backwards)
        inits += [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
                  (("flip_starts", [-1]), ("flip_ends", [np.iinfo(np.int64).min]), ("flip_axes", [3]),
                   ("flip_steps", [-1]))]
        nodes += [helper.make_node("Slice", ["x0", "flip_starts", "flip_ends", "flip_axes", "flip_steps"],
                                   ["mirrored"]),
                  helper.make_node("Concat", ["x0", "mirrored"], ["pair"], axis=0)]
        x = "pair"
    for k, (kind, weight, bias) in enumerate(folded_layers(model)):
        y = f"x{k + 1}"
        if kind == "conv":
            inits += [numpy_helper.from_array(as_float16_weights(weight), f"w{k}"),
                      numpy_helper.from_array(as_float16_weights(bias), f"b{k}")]
            nodes += [helper.make_node("Conv", [x, f"w{k}", f"b{k}"], [f"c{k}"], kernel_shape=[3, 3],
                                       pads=[1, 1, 1, 1]),
                      helper.make_node("Relu", [f"c{k}"], [y])]
        elif kind == "pool":
            nodes.append(helper.make_node("MaxPool", [x], [y], kernel_shape=[2, 2], strides=[2, 2]))
        else:
            inits += [numpy_helper.from_array(as_float16_weights(weight), "wd"),
                      numpy_helper.from_array(as_float16_weights(bias), "bd")]
            nodes += [helper.make_node("GlobalAveragePool", [x], ["gap"]),
                      helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
                      helper.make_node("Gemm", ["flat", "wd", "bd"], ["logits"], transB=1),
                      helper.make_node("Softmax", ["logits"], ["probabilities" if not flip_tta else "both"],
                                       axis=1)]
        x = y
    if flip_tta:  # the mean of each face's probabilities and its mirror image's
        nodes += [helper.make_node("Split", ["both"], ["direct", "mirror"], axis=0),
                  helper.make_node("Mean", ["direct", "mirror"], ["probabilities"])]
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 48, 48, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", len(LABELS)])],
        inits,
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                   producer_name="moodstream_train.export_onnx")
    onnx_model.ir_version = 8  # readable by onnxruntime 1.14 and newer
    onnx.checker.check_model(onnx_model)
    return onnx_model


def compare_with_tflite(onnx_path: Path, tflite_path: Path, samples: int = 64) -> float:
    """Largest absolute difference of the probabilities on random and smooth faces."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    rng = np.random.default_rng(0)
    batch = rng.random((samples, 48, 48, 1), dtype=np.float32)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ours = session.run(None, {"input": batch})[0]
    interp = Interpreter(model_path=str(tflite_path))
    inp = interp.get_input_details()[0]
    interp.resize_tensor_input(inp["index"], [samples, 48, 48, 1])
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], batch)
    interp.invoke()
    theirs = interp.get_tensor(interp.get_output_details()[0]["index"])
    return float(np.abs(ours - theirs).max())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tflite", type=Path, help="the float16 .tflite of the same checkpoint, to compare with")
    ap.add_argument("--flip-tta", action="store_true", help="average with the mirror image inside the graph")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model, _ = load_checkpoint(args.checkpoint, torch.device("cpu"))
    model.eval()
    onnx_model = build_onnx(model, "moodstream-emotion", args.flip_tta)
    args.out.write_bytes(onnx_model.SerializeToString())
    log.info("wrote %s (%d bytes)", args.out, args.out.stat().st_size)
    if args.tflite:
        diff = compare_with_tflite(args.out, args.tflite)
        log.info("max |onnx - tflite| over 64 random faces: %.2e", diff)
        meta_path = args.tflite.with_suffix(".json")
        meta = json.loads(meta_path.read_text())
        meta["onnx"] = {"file": args.out.name, "opset": OPSET, "flip_tta_in_graph": args.flip_tta,
                        "max_abs_diff_vs_tflite": float(f"{diff:.1e}")}
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        if diff > 1e-3:
            raise SystemExit(f"the ONNX model differs from {args.tflite} by {diff:.2e} (more than 1e-3)")


if __name__ == "__main__":
    main()
