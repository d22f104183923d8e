"""The two DIL modules, usable in any 2D CNN on frames folded as ``(N*U*T, C, H, W)``."""
from .directions import DirectionPaths, untie_shared_checkpoint
from .inter_sim import InterSIM, InterSMA
from .intra_sim import IntraSIM, IntraSMA, SnippetKernel

__all__ = ["IntraSIM", "IntraSMA", "SnippetKernel", "InterSIM", "InterSMA", "DirectionPaths", "untie_shared_checkpoint"]
