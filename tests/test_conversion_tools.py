"""tools/convert_*_weights.py: the scripts that made the shipped detector weights refuse a wrong input in one
line (exit 2), write nothing then, and never replace the shipped asset after a failed check."""
from __future__ import annotations

import zipfile

from project_scripts import load_script


def test_mtcnn_conversion_names_a_missing_or_wrong_wheel(tmp_path, capsys):
    tool = load_script("tools/convert_mtcnn_weights.py")
    out = tmp_path / "mtcnn.safetensors"
    assert tool.main([str(tmp_path / "missing.whl"), "--out", str(out)]) == 2
    assert "No such file" in capsys.readouterr().err
    other = tmp_path / "other.whl"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("something/else.py", "")
    assert tool.main([str(other), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "facenet_pytorch/data/pnet.pt" in err and "facenet_pytorch-2.6.0" in err
    assert not out.exists()


def test_blazeface_conversion_names_a_missing_wheel_or_reader(tmp_path, capsys):
    tool = load_script("tools/convert_blazeface_weights.py")
    out = tmp_path / "blazeface.safetensors"
    assert tool.main([str(tmp_path / "missing.whl"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "pip install tflite" in err or "No such file" in err  # without tflite the reader is named first
    assert not out.exists() and not (tmp_path / "LICENSE-mediapipe.txt").exists()
