"""Model families registered with timm on ``import dynsnip``."""
from . import dil_resnet
from .dil_resnet import DILFeatures, DILResNet, checkpoint_filter_fn, convert_resnet, dil_model_names
from .paper_configs import model_arg_flags, paper_config, paper_config_names

__all__ = [
    "DILResNet", "DILFeatures", "convert_resnet", "checkpoint_filter_fn", "dil_model_names", "dil_resnet",
    "paper_config", "paper_config_names", "model_arg_flags",
]
