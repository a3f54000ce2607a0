"""Adversarial robustness: attacks, robustness curves, adversarial training, Lipschitz bounds."""

from ._attacks import ATTACKS, fgm, fgsm, pgd
from ._evaluate import adversarial_training_step, robustness_curve
from ._lipschitz import (
    LayerLipschitz,
    LipschitzReport,
    empirical_lipschitz,
    lipschitz_upper_bound,
    operator_norm,
)

__all__ = ["ATTACKS", "LayerLipschitz", "LipschitzReport", "adversarial_training_step",
           "empirical_lipschitz", "fgm", "fgsm", "lipschitz_upper_bound", "operator_norm", "pgd",
           "robustness_curve"]
