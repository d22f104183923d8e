"""The embedded demo (``dynsnip demo``): DIL against a frame-level detector on real footage
bundled with the package and its face-region pseudo-fakes (:mod:`dynsnip.demo.synthetic`:
footage and the earlier flicker task, :mod:`dynsnip.demo.pseudo_fake_clips`,
:mod:`dynsnip.demo.run`)."""
from .run import DemoConfig, DemoResult, run_demo

__all__ = ["DemoConfig", "DemoResult", "run_demo"]
