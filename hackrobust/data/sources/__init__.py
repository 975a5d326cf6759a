"""Image sources the dataset generators draw from.

Every source returns an `ImagePool`: float32 images in [0, 1], shape (N, C, H, W), with the
source's own integer class ids. Real sets are read from a data directory; each kind also has an
offline stand-in (scikit-learn's digits, procedural objects and faces) for tests and demos.
"""

from hackrobust.data.sources.pool import ImagePool

__all__ = ["ImagePool"]
