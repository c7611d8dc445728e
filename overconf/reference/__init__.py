"""Reference models (LiRA, RMIA, Shokri): a balanced keep matrix over the reference data, K models
trained many at once (torch.func) or one by one, cached by content, and their outputs cached per
(reference model, input set). Attacks read them as signals (``overconf.reference.signals``)."""
from .keep import balanced_keep
from .manager import ReferenceSet, reference_set

__all__ = ["balanced_keep", "ReferenceSet", "reference_set"]
