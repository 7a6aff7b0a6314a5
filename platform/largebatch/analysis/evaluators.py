"""The importance evaluators by name, their citations and the default parameters of an importance view.

Kept apart from :mod:`largebatch.analysis.importance` (which needs Optuna) so that dashboard schemas and figures
name the evaluators without importing Optuna.
"""

EVALUATORS = {"ped-anova": "PED-ANOVA", "fanova": "fANOVA"}  # key in dashboard files → the evaluator's name
CITATIONS = {"ped-anova": "Watanabe et al. 2023", "fanova": "Hutter et al. 2014"}
DEFAULT_PARAMS = ("lr", "batch_size", "optimizer.name", "optimizer.weight_decay")
