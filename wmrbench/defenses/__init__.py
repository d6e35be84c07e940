"""Training defenses by name (``--defense``): the registry, one module per defense.

Every defense is a :class:`DefenseSpec`: its training attack's inner loss, whether its loss
needs the clean logits or the PGD steps each example survived, and its loss. Training calls
them through one interface (:func:`wmrbench.training.train_step`); adding a defense is one
module here, one registry line below, its name in :class:`wmrbench.core.config.Defense` and its
presets (:mod:`wmrbench.core.presets`).

* ``pgd``, ``trades``: Madry et al. PGD-AT and TRADES, with the paper's exp(-alpha * margin)
  weight when alpha_train > 0 ("+ours"; :mod:`wmrbench.defenses.objectives`);
* ``mart``: Wang et al. (ICLR 2020), :mod:`.mart`;
* ``gairat``: Zhang et al. (ICLR 2021), :mod:`.gairat`;
* ``mail-at``, ``mail-trades``: Wang et al. (NeurIPS 2021), :mod:`.mail`.
"""

from __future__ import annotations

from wmrbench.defenses.base import DefenseSpec, LossInputs, check_spec
from wmrbench.defenses.registry import DEFENSES, get_defense, list_defenses, register_defense

# The registry lines: importing a module registers its defenses.
from wmrbench.defenses import baseline  # noqa: E402,F401  pgd, trades (and "+ours")
from wmrbench.defenses import mart  # noqa: E402,F401
from wmrbench.defenses import gairat  # noqa: E402,F401
from wmrbench.defenses import mail  # noqa: E402,F401

__all__ = ["DEFENSES", "DefenseSpec", "LossInputs", "check_spec", "get_defense", "list_defenses", "register_defense"]
