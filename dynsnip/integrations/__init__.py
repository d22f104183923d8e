"""dynsnip inside other frameworks, met at their interfaces (none of their code is imported here).

* :mod:`dynsnip.integrations.deepfakebench`: a DIL detector for DeepfakeBench's detector
  registry (``register(DETECTOR, AbstractDetector)``), trained with dynsnip's loss and metrics;
  ``deepfakebench_dil.yaml`` beside it is a ready detector config (docs/deepfakebench.md).
"""
from __future__ import annotations

__all__ = ["deepfakebench"]
