"""Convert facenet-pytorch's MTCNN weights to the package's one safetensors asset.

The three state dicts (``pnet.pt``, ``rnet.pt``, ``onet.pt``) ship, MIT-licensed, inside
the facenet-pytorch 2.6.0 wheel (the package itself pins an old torch and is not a
dependency). Get the wheel and run this script::

    pip download facenet-pytorch==2.6.0 --no-deps -d /tmp/fnp
    python tools/convert_mtcnn_weights.py /tmp/fnp/facenet_pytorch-2.6.0-py3-none-any.whl

It reads the files with ``torch.load(weights_only=True)`` (plain tensors, nothing is
unpickled), prefixes the names with ``pnet.``/``rnet.``/``onet.``, checks that they load
strictly into :class:`dynsnip.data.faces.mtcnn.MTCNN`, and writes
``dynsnip/assets/mtcnn/mtcnn.safetensors``.
"""
from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

import torch
from safetensors.torch import save_file

NETS = ("pnet", "rnet", "onet")


def convert(wheel: Path, out: Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    with zipfile.ZipFile(wheel) as archive:
        for net in NETS:
            raw = archive.read(f"facenet_pytorch/data/{net}.pt")
            for name, tensor in torch.load(io.BytesIO(raw), weights_only=True).items():
                state[f"{net}.{name}"] = tensor.float().contiguous()
    from dynsnip.data.faces.mtcnn import MTCNN

    MTCNN().load_state_dict(state, strict=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out), metadata={"source": "facenet-pytorch 2.6.0 wheel (MIT), data/{p,r,o}net.pt"})
    return state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="facenet_pytorch-2.6.0-py3-none-any.whl")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parent.parent / "dynsnip/assets/mtcnn/mtcnn.safetensors")
    args = parser.parse_args(argv)
    try:
        state = convert(args.wheel, args.out)
    except (OSError, zipfile.BadZipFile, KeyError) as err:  # a missing file, not a wheel, another wheel
        print(f"convert_mtcnn_weights: {args.wheel}: {err}; expected the facenet_pytorch-2.6.0-py3-none-any.whl "
              "that `pip download facenet-pytorch==2.6.0 --no-deps` fetches", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {len(state)} tensors, {sum(t.numel() for t in state.values())} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
