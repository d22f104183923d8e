"""More snippets than a video holds: capped at the number of different snippets, with a note."""
from __future__ import annotations

import json

import timm

import dynsnip
from dynsnip.cli import main
from dynsnip.data import FaceClipLoader
from dynsnip.data.sampling import distinct_snippets
from video_fixtures import encode, faceless_frames


def test_distinct_snippets():
    assert [distinct_snippets(n, 4) for n in (1, 3, 4, 5, 19)] == [1, 1, 1, 2, 16]


def test_predict_caps_snippets_at_what_the_video_holds(tmp_path, capsys):
    video = encode(tmp_path / "short.mp4", faceless_frames(12, size=(32, 32)))
    clip = FaceClipLoader(num_snippets=1000, face_detector="none", size=(16, 16), cap_snippets=True)(video)
    assert clip.pixels.shape == (3, 9 * 4, 16, 16) and clip.frame_indices[:, 0].tolist() == list(range(9))
    model = timm.create_model("dil_resnet18", num_classes=1, channels=(8, 16, 32, 64), stem_width=8)
    dynsnip.save_pretrained(model, tmp_path / "det", pretrained_cfg={"input_size": (3, 16, 16)})
    out = tmp_path / "r.json"
    code = main(["predict", str(video), "--checkpoint", str(tmp_path / "det"), "--face-detector", "none",
                 "--snippets", "1000", "--workers", "0", "--no-progress", "--output", str(out)])
    assert code == 0
    assert "1000 snippets asked for, but 12 frames hold only 9 different snippets of 4: scored with 9" in (
        capsys.readouterr().err)
    (result,) = json.loads(out.read_text())["videos"]
    assert len(result["snippets"]) == 9 and "scored with 9" in result["note"]
