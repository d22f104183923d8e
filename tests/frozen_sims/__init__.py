"""A frozen copy of dynsnip's SIMs as of commit e85d436 (before issue 24 rewrote their forward).

A second reference besides ``reference_dil.py``: not a transcription of the paper but the exact
code that computed every checkpoint saved so far, so that the tests can check that the rewritten
modules load those state dicts (same keys and shapes) and compute what they computed. Never edit
these files to match new code.
"""
from .inter_sim import InterSIM
from .intra_sim import IntraSIM

__all__ = ["IntraSIM", "InterSIM"]
