"""Methods: small subclasses of `BaseMethod` that differ only where their papers differ."""

from hackrobust.methods.base import BaseMethod
from hackrobust.methods.dbat import DBAT
from hackrobust.methods.dfr import DFR
from hackrobust.methods.divdis import DivDis
from hackrobust.methods.erm import ERM
from hackrobust.methods.fixmatch import FixMatch
from hackrobust.methods.group_dro import GroupDRO
from hackrobust.methods.jtt import JTT
from hackrobust.methods.logit_adjustment import LogitAdjustment
from hackrobust.methods.topk import TopKDisagreement

__all__ = [
    "DBAT",
    "DFR",
    "ERM",
    "JTT",
    "BaseMethod",
    "DivDis",
    "FixMatch",
    "GroupDRO",
    "LogitAdjustment",
    "TopKDisagreement",
]
