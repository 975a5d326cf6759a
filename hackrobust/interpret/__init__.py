"""Interpretability: per-head attribution maps of the inputs."""

from hackrobust.interpret.attribution import attribution_figure, head_attributions
from hackrobust.interpret.callback import AttributionMaps

__all__ = ["AttributionMaps", "attribution_figure", "head_attributions"]
