"""dynsnip: Dynamic Inconsistency Learning (DIL, AAAI 2022) for DeepFake video detection.

``import dynsnip`` registers the ``dil_*`` models with timm::

    import dynsnip, timm
    model = timm.create_model("dil_resnet50", num_classes=1)   # (B, 3, U*T, H, W) -> (B, 1)
"""
from __future__ import annotations

__version__ = "0.2.0.dev0"

from .attention_maps import record_attention
from .hub import load_model, push_to_hub, save_pretrained
from .models import DILResNet, convert_resnet, paper_config, paper_config_names
from .modules import InterSIM, IntraSIM
from .scoring import predict_videos

__all__ = [
    "IntraSIM",
    "InterSIM",
    "convert_resnet",
    "DILResNet",
    "paper_config",
    "paper_config_names",
    "record_attention",
    "save_pretrained",
    "push_to_hub",
    "load_model",
    "predict_videos",
    "__version__",
]
