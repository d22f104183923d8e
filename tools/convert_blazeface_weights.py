"""Convert MediaPipe's BlazeFace face detectors (TFLite) to the package's one safetensors asset.

The two models ship, Apache-2.0, inside the ``mediapipe==0.10.21`` wheel (later wheels no longer
carry them; mediapipe itself pins numpy < 2 and is not a dependency)::

    pip download --no-deps mediapipe==0.10.21 -d /tmp/mp     # the cp311 manylinux wheel, ~35 MB
    pip install --target /tmp/tfl --no-deps tflite flatbuffers ai-edge-litert   # this tool only
    PYTHONPATH=/tmp/tfl python tools/convert_blazeface_weights.py /tmp/mp/mediapipe-0.10.21-*.whl

It reads ``mediapipe/modules/face_detection/face_detection_short_range.tflite`` and
``face_detection_full_range_sparse.tflite`` from the wheel and parses their flatbuffers with the
``tflite`` schema package: every CONV_2D and DEPTHWISE_CONV_2D, in graph order, gives its kernel
and bias, followed back through the graph's DEQUANTIZE (float16 -> float32) and DENSIFY (the
full-range model's pointwise kernels are stored sparse: CSR over the input channels, decoded
here) ops. Kernels go from TFLite's ``(out, kh, kw, in)`` / depthwise ``(1, kh, kw, C)`` to
torch's ``(out, in, kh, kw)`` / ``(C, 1, kh, kw)`` and are matched, by order, kind and shape,
with the convolutions of :class:`dynsnip.data.faces.blazeface.BlazeFaceShortRange` /
``BlazeFaceFullRange`` (constructed in graph order); they must load strictly. Written:
``dynsnip/assets/blazeface/blazeface.safetensors`` (``short_range.*``, ``full_range.*``, float32;
the source files' sha256 in its metadata) and ``LICENSE-mediapipe.txt`` (the wheel's Apache-2.0
text) beside it.

Check: with a TFLite runtime importable (``ai_edge_litert``, or ``tflite_runtime``), both models
run in TFLite's interpreter and in torch on the same letterboxed real frames (the bundled footage
and any ``--videos``); the largest differences of the raw outputs and of the decoded, suppressed
detections are printed, and the tool fails when they exceed float32 round-off (``--atol``).
Without a runtime it says so (``--no-check`` skips it on purpose).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
MODEL_FILES = {
    "short": "mediapipe/modules/face_detection/face_detection_short_range.tflite",
    "full": "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
}
LICENCE_FILE = "mediapipe-0.10.21.dist-info/LICENSE"


class TfliteGraph:
    """The constant tensors and convolution ops of one TFLite model (subgraph 0)."""

    def __init__(self, data: bytes):
        import tflite
        from tflite.BuiltinOperator import BuiltinOperator

        self.tflite, self.data = tflite, data
        self.model = tflite.Model.GetRootAsModel(data, 0)
        if self.model.SubgraphsLength() != 1:
            raise ValueError(f"expected one subgraph, got {self.model.SubgraphsLength()}")
        self.graph = self.model.Subgraphs(0)
        names = {value: name for name, value in vars(BuiltinOperator).items() if not name.startswith("_")}
        self.ops = []  # (op name, inputs, outputs, operator)
        self.producer = {}
        for k in range(self.graph.OperatorsLength()):
            op = self.graph.Operators(k)
            code = self.model.OperatorCodes(op.OpcodeIndex())
            name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
            inputs = [int(i) for i in op.InputsAsNumpy() if i >= 0]
            outputs = [int(i) for i in op.OutputsAsNumpy()]
            self.ops.append((name, inputs, outputs, op))
            for out in outputs:
                self.producer[out] = len(self.ops) - 1

    def _buffer(self, tensor) -> bytes:
        buffer = self.model.Buffers(tensor.Buffer())
        if buffer.DataLength():
            return buffer.DataAsNumpy().tobytes()
        if buffer.Size():  # stored after the flatbuffer
            return self.data[buffer.Offset():buffer.Offset() + buffer.Size()]
        return b""

    def _vector(self, table, kind: int) -> np.ndarray:
        from tflite.Int32Vector import Int32Vector
        from tflite.Uint16Vector import Uint16Vector
        from tflite.Uint8Vector import Uint8Vector

        cls = {1: Int32Vector, 2: Uint16Vector, 3: Uint8Vector}[kind]
        vector = cls()
        vector.Init(table.Bytes, table.Pos)
        return vector.ValuesAsNumpy().astype(np.int64)

    def _densify(self, values: np.ndarray, shape: tuple[int, ...], sparsity) -> np.ndarray:
        """TFLite's sparse storage (dense and CSR levels in ``traversal_order``, no blocks) -> dense."""
        order = [int(i) for i in sparsity.TraversalOrderAsNumpy()]
        if sparsity.BlockMapLength() or sorted(order) != list(range(len(shape))):
            raise NotImplementedError("block-sparse TFLite tensors are not handled (none in these models)")
        levels = []
        for d in range(sparsity.DimMetadataLength()):
            meta = sparsity.DimMetadata(d)
            if meta.Format() == 0:  # DENSE
                levels.append(("dense", meta.DenseSize()))
            else:  # SPARSE_CSR
                levels.append(("csr", self._vector(meta.ArraySegments(), meta.ArraySegmentsType()),
                               self._vector(meta.ArrayIndices(), meta.ArrayIndicesType())))
        dense = np.zeros(shape, dtype=values.dtype)
        coords = [0] * len(shape)

        def walk(level: int, parent: int) -> None:
            if level == len(levels):
                dense[tuple(coords)] = values[parent]
                return
            if levels[level][0] == "dense":
                size = levels[level][1]
                for j in range(size):
                    coords[order[level]] = j
                    walk(level + 1, parent * size + j)
            else:
                _, segments, indices = levels[level]
                for k in range(segments[parent], segments[parent + 1]):
                    coords[order[level]] = int(indices[k])
                    walk(level + 1, k)

        walk(0, 0)
        return dense

    def constant(self, index: int) -> tuple[np.ndarray, str]:
        """The float32 value of tensor ``index``, following DEQUANTIZE / DENSIFY back to stored data;
        and how it was stored."""
        tensor = self.graph.Tensors(index)
        data = self._buffer(tensor)
        if data:
            dtype = {0: np.float32, 1: np.float16, 2: np.int32}[tensor.Type()]
            values = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<"))
            shape = tuple(int(s) for s in tensor.ShapeAsNumpy())
            if tensor.Sparsity() is not None:
                return self._densify(values, shape, tensor.Sparsity()).astype(np.float32), f"sparse {dtype.__name__}"
            return values.reshape(shape).astype(np.float32), dtype.__name__
        if index not in self.producer:
            raise ValueError(f"tensor {tensor.Name().decode()} has neither data nor a producing op")
        name, inputs, _, _ = self.ops[self.producer[index]]
        if name not in ("DEQUANTIZE", "DENSIFY"):
            raise ValueError(f"tensor {tensor.Name().decode()} comes from {name}, not a constant")
        value, kind = self.constant(inputs[0])
        return value, kind

    def convolutions(self) -> list[tuple[str, np.ndarray, np.ndarray, str]]:
        """``(op name, kernel, bias, storage)`` of every convolution, in graph order."""
        out = []
        for name, inputs, _, _ in self.ops:
            if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                kernel, kind = self.constant(inputs[1])
                bias, _ = self.constant(inputs[2])
                out.append((name, kernel, bias, kind))
        return out


def convert_model(data: bytes, model: str) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """The torch state dict of ``model`` ("short"/"full") from its TFLite bytes, and storage counts."""
    from dynsnip.data.faces.blazeface import NETWORKS

    network = NETWORKS[model]()
    convs = [(name, m) for name, m in network.named_modules() if isinstance(m, torch.nn.Conv2d)]
    found = TfliteGraph(data).convolutions()
    if len(found) != len(convs):
        raise ValueError(f"{model}: the TFLite graph has {len(found)} convolutions, the torch network {len(convs)}")
    state: dict[str, torch.Tensor] = {}
    storage: dict[str, int] = {}
    for (op, kernel, bias, kind), (name, conv) in zip(found, convs):
        depthwise = conv.groups > 1
        if depthwise != (op == "DEPTHWISE_CONV_2D"):
            raise ValueError(f"{model}: {name} is {'depthwise' if depthwise else 'dense'}, the graph's op is {op}")
        weight = kernel.transpose(3, 0, 1, 2) if depthwise else kernel.transpose(0, 3, 1, 2)
        if tuple(weight.shape) != tuple(conv.weight.shape) or tuple(bias.shape) != tuple(conv.bias.shape):
            raise ValueError(f"{model}: {name} expects {tuple(conv.weight.shape)}, the graph gives {weight.shape}")
        state[f"{name}.weight"] = torch.from_numpy(np.ascontiguousarray(weight))
        state[f"{name}.bias"] = torch.from_numpy(np.ascontiguousarray(bias))
        storage[kind] = storage.get(kind, 0) + 1
    network.load_state_dict(state, strict=True)
    return state, storage


def _interpreter(data: bytes):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            return None
    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    return interpreter


def check_against_tflite(data: bytes, model: str, state: dict, frames: list[np.ndarray], atol: float) -> dict | None:
    """Raw outputs and detections of torch vs TFLite's interpreter on the same inputs; None without a runtime."""
    from dynsnip.data.faces.blazeface import SCORE_CLIP, BlazeFace, decode, weighted_nms

    interpreter = _interpreter(data)
    if interpreter is None:
        return None
    detector = BlazeFace(model)
    detector.network.load_state_dict(state, strict=True)
    detector.eval()
    outputs = {tuple(d["shape"])[-1]: d["index"] for d in interpreter.get_output_details()}  # 16: boxes, 1: scores
    worst = dict(raw_boxes=0.0, logits=0.0, detection=0.0, count_mismatch=0, inputs=0, faces=0)
    for frame in frames:
        images = torch.from_numpy(np.array(frame)).permute(2, 0, 1)[None].float()
        x, _, _ = detector.letterbox(images)
        with torch.no_grad():
            raw, logits = detector.network(x)
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"],
                               x.permute(0, 2, 3, 1).contiguous().numpy())
        interpreter.invoke()
        raw_tfl = torch.from_numpy(interpreter.get_tensor(outputs[16]).copy())
        logits_tfl = torch.from_numpy(interpreter.get_tensor(outputs[1]).copy())[..., 0]
        # relative to the value's size (the short-range model's outputs reach 1e4 on black borders; the logits
        # as the decoder sees them, clipped to +-100)
        worst["raw_boxes"] = max(worst["raw_boxes"], float(((raw - raw_tfl).abs() / raw_tfl.abs().clamp(min=1)).max()))
        clipped = [v.clamp(-SCORE_CLIP, SCORE_CLIP) for v in (logits, logits_tfl)]
        worst["logits"] = max(worst["logits"], float(((clipped[0] - clipped[1]).abs() / clipped[1].abs().clamp(min=1)).max()))
        mine, theirs = [], []
        for r, l, out in ((raw, logits, mine), (raw_tfl, logits_tfl, theirs)):
            boxes, scores = decode(r[0], l[0], detector.anchors)
            keep = scores >= detector.min_score
            out.append(weighted_nms(boxes[keep], scores[keep], detector.nms_threshold))
        if len(mine[0]) != len(theirs[0]):
            worst["count_mismatch"] += 1
        elif len(mine[0]):
            worst["detection"] = max(worst["detection"], float((mine[0] - theirs[0]).abs().max()))
        worst["inputs"] += 1
        worst["faces"] += len(mine[0])
    worst["ok"] = worst["raw_boxes"] <= atol and worst["logits"] <= atol and not worst["count_mismatch"]
    return worst


def check_frames(videos: list[Path], per_video: int = 6) -> list[np.ndarray]:
    """A few frames spread over each video (the bundled footage and ``videos``), plus each rotated by
    40 degrees and shrunk to a third (harder inputs, more candidate boxes)."""
    from PIL import Image

    from dynsnip.data import VideoReader, bundled_videos

    frames = []
    for path in [*bundled_videos(), *videos]:
        with VideoReader(path) as video:
            picks = np.linspace(0, video.num_frames - 1, per_video).round().astype(int)
            for frame in video.read(sorted(set(picks.tolist()))):
                frames.append(frame)
                image = Image.fromarray(frame)
                frames.append(np.asarray(image.rotate(40, resample=Image.BICUBIC)))
                frames.append(np.asarray(image.resize((max(1, image.width // 3), max(1, image.height // 3)))))
    return frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="mediapipe-0.10.21-*.whl")
    parser.add_argument("--out", type=Path, default=ROOT / "dynsnip/assets/blazeface/blazeface.safetensors")
    parser.add_argument("--videos", nargs="*", type=Path, default=[], help="check on frames of these videos too")
    parser.add_argument("--atol", type=float, default=1e-3,
                        help="largest raw-output difference accepted, relative to max(1, |value|) (logits clipped to +-100)")
    parser.add_argument("--no-check", action="store_true", help="skip the comparison with TFLite's interpreter")
    args = parser.parse_args(argv)

    try:
        import tflite  # noqa: F401  (reads the TFLite models: checked before any work)
    except ImportError:
        print("convert_blazeface_weights: needs the `tflite` package to read the models: pip install tflite",
              file=sys.stderr)
        return 2
    try:
        return _convert(args)
    except (OSError, zipfile.BadZipFile, KeyError) as err:  # a missing file, not a wheel, another wheel
        print(f"convert_blazeface_weights: {args.wheel}: {err}; expected the mediapipe 0.10.21 wheel that "
              "`pip download --no-deps mediapipe==0.10.21` fetches", file=sys.stderr)
        return 2


def _convert(args: argparse.Namespace) -> int:
    """Convert, compare with TFLite's interpreter, and write the asset and its licence only when
    the comparison passed (or was skipped): a failed check must not replace the shipped weights."""
    state: dict[str, torch.Tensor] = {}
    metadata = {"source": f"{args.wheel.name} (Apache-2.0)"}
    checks = {}
    frames = None
    with zipfile.ZipFile(args.wheel) as archive:
        licence = archive.read(LICENCE_FILE).decode()
        for model, member in MODEL_FILES.items():
            data = archive.read(member)
            metadata[f"{model}_range"] = f"{member} sha256 {hashlib.sha256(data).hexdigest()}"
            weights, storage = convert_model(data, model)
            print(f"{model} range: {len(weights) // 2} convolutions from {member} ({storage}), "
                  f"{sum(t.numel() for t in weights.values())} parameters")
            state.update({f"{model}_range.{name}": tensor for name, tensor in weights.items()})
            if not args.no_check:
                frames = frames if frames is not None else check_frames(args.videos)
                checks[model] = check_against_tflite(data, model, weights, frames, args.atol)
    failed = False
    for model, check in checks.items():
        if check is None:
            print(f"{model} range: no TFLite runtime importable (ai_edge_litert / tflite_runtime): outputs NOT compared")
            continue
        print(f"{model} range vs TFLite interpreter on {check['inputs']} inputs ({check['faces']} faces): "
              f"max raw box diff {check['raw_boxes']:.2e} (relative), max logit diff {check['logits']:.2e} (relative, clipped), "
              f"max |detection diff| {check['detection']:.2e} px, face-count mismatches {check['count_mismatch']}")
        failed |= not check["ok"]
    if failed:
        print(f"FAILED: outputs differ by more than --atol {args.atol}; {args.out} not written", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(args.out), metadata=metadata)
    # the wheel's licence file: the Apache-2.0 text, without the notices of other files of the wheel
    apache = licence.split("\n=====")[0].rstrip() + "\n"
    (args.out.parent / "LICENSE-mediapipe.txt").write_text(apache)
    print(f"wrote {args.out} ({len(state)} tensors) and {args.out.parent / 'LICENSE-mediapipe.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
