"""Methods: small subclasses of `BaseMethod` that differ only where their papers differ."""

from hackrobust.methods.base import BaseMethod
from hackrobust.methods.dbat import DBAT
from hackrobust.methods.divdis import DivDis
from hackrobust.methods.erm import ERM
from hackrobust.methods.topk import TopKDisagreement

__all__ = ["DBAT", "ERM", "BaseMethod", "DivDis", "TopKDisagreement"]
