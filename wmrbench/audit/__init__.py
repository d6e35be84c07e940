"""``wmrbench audit``: the gradient-masking checklist of Carlini et al. (2019) and
Athalye et al. (2018), run by the benchmark itself on a model, so that a "+ours" gain cannot come
from a masked gradient.

* :mod:`.config`: the audit's settings and tolerances;
* :mod:`.stages`: the attacks it runs (PGD-CE at several eps and budgets, pgd-lsa, pgd-cw, Square),
  each saved so that a killed audit continues;
* :mod:`.transfer`: points from a reference model, through ``attack`` / ``evaluate --adversarial``;
* :mod:`.checks`: pass / warn / fail per check, pure functions of the records;
* :mod:`.report`: audit.json, audit.md and the eps-sweep plot;
* :mod:`.run`: all of it in one call, :func:`run_audit`.
"""

from wmrbench.audit.checks import FAIL, NOT_RUN, PASS, WARN, Check
from wmrbench.audit.config import AUDIT_ALPHAS, DEFAULT_N_EXAMPLES, AuditConfig, Tolerances, quick
from wmrbench.audit.report import lines
from wmrbench.audit.run import AuditResult, run_audit

__all__ = ["AUDIT_ALPHAS", "AuditConfig", "AuditResult", "Check", "DEFAULT_N_EXAMPLES", "FAIL", "NOT_RUN", "PASS",
           "Tolerances", "WARN", "lines", "quick", "run_audit"]
