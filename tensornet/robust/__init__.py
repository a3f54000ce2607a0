"""Adversarial robustness: attacks, robustness curves, adversarial training, Lipschitz bounds."""

from ._attacks import ATTACKS, fgm, fgsm, pgd
from ._evaluate import adversarial_training_step, robustness_curve

__all__ = ["ATTACKS", "adversarial_training_step", "fgm", "fgsm", "pgd", "robustness_curve"]
