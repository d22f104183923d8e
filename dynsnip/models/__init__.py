"""Model families registered with timm on ``import dynsnip``."""
from . import dil_resnet
from .dil_resnet import DILFeatures, DILResNet, checkpoint_filter_fn, dil_model_names

__all__ = ["DILResNet", "DILFeatures", "checkpoint_filter_fn", "dil_model_names", "dil_resnet"]
