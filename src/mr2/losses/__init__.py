"""Every loss in one calling convention, ``loss_fn(logits, features, targets)``, and one
registry: ``create(name, num_classes=K, **options)``, ``available()``."""

# Importing each module registers its losses.
from mr2.losses.balanced_softmax import BalancedSoftmax
from mr2.losses.base import ClassLoss, weighted_reduce
from mr2.losses.cdb import CDBLoss, cdb_weights
from mr2.losses.center import CenterLoss
from mr2.losses.cross_entropy import CrossEntropy
from mr2.losses.focal import FocalLoss, focal_loss
from mr2.losses.gce import GeneralizedCrossEntropy, generalized_cross_entropy
from mr2.losses.group_dro import GroupDRO
from mr2.losses.label_smoothing import LabelSmoothing, label_smoothing_cross_entropy
from mr2.losses.ldam import LDAMLoss, ldam_loss
from mr2.losses.logit_adjustment import LogitAdjustment, logit_adjusted_cross_entropy
from mr2.losses.mixed import mixed_loss
from mr2.losses.mr2 import MR2Loss
from mr2.losses.mr2.variants import mr2_logit, mr2_rep, mr2_reversed
from mr2.losses.registry import (
    available,
    create,
    describe,
    options,
    presets,
    problems,
    register,
)
from mr2.losses.supcon import SupConLoss, supervised_contrastive
from mr2.losses.vs import VSLoss, vs_loss

__all__ = [
    "BalancedSoftmax",
    "CDBLoss",
    "CenterLoss",
    "ClassLoss",
    "CrossEntropy",
    "FocalLoss",
    "GeneralizedCrossEntropy",
    "GroupDRO",
    "LDAMLoss",
    "LabelSmoothing",
    "LogitAdjustment",
    "MR2Loss",
    "SupConLoss",
    "VSLoss",
    "available",
    "cdb_weights",
    "create",
    "describe",
    "focal_loss",
    "generalized_cross_entropy",
    "label_smoothing_cross_entropy",
    "ldam_loss",
    "logit_adjusted_cross_entropy",
    "mixed_loss",
    "mr2_logit",
    "mr2_rep",
    "mr2_reversed",
    "options",
    "presets",
    "problems",
    "register",
    "supervised_contrastive",
    "vs_loss",
    "weighted_reduce",
]
