"""The embedded demo (``dynsnip demo``): DIL against a frame-level detector on real/fake clips
that the package makes from its bundled real footage (:mod:`dynsnip.demo.synthetic`,
:mod:`dynsnip.demo.run`)."""
from .run import DemoConfig, DemoResult, run_demo

__all__ = ["DemoConfig", "DemoResult", "run_demo"]
