"""wmrbench: robustness under non-uniform attacks (Zeng et al., AAAI 2021).

Weighted PGD, weighted adversarial training (PGD-AT and TRADES, "+ours") and the A_sa / A_tr
metrics beside A_nat and A_rob, behind one attack engine (:mod:`wmrbench.attacks`).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("wmrbench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
