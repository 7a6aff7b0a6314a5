"""Reproductions of the papers' tables: ``largebatch reproduce TABLE [--profile smoke|cpu|gpu|online]``.

Each table is declarative: ``sweeps/reproduce/<table>/table.yaml`` (the spec: series, how our numbers are
computed, claims with their verdict rules, the dashboard) plus one ordinary sweep file per profile. The published
numbers, each with its source, live in the packaged ``published.yaml``. Modules, bottom up: ``published`` (the
data file), ``rules`` (the outcomes, statistics and preconditions every verdict shares), ``claims`` (the one
registry of claim rules: per rule its schema, named test and wording), ``spec`` (the spec schema and finding specs),
``numbers`` (our numbers from :func:`largebatch.analysis.load_results`), ``report`` (judging and Markdown),
``run`` (run or resume the sweep, build the dashboard), ``command`` (the CLI). This layer sits above
``largebatch.sweep``, ``largebatch.analysis`` and ``largebatch.dashboard`` and reads results only through
``load_results``.

Tables: ``lars-trust-ratios`` (LARS, arXiv:1708.03888, Table 1), ``lars-batch-scaling`` (LARS Sec. 3–5),
``lamb-bert-scaling`` (LAMB, arXiv:1904.00962, Table 1), ``goyal-linear-scaling`` (Goyal et al.,
arXiv:1706.02677, Figure 1), ``lamb-optimizer-comparison`` (LAMB's ImageNet optimizer comparison; Nado et al.,
arXiv:2102.06356).
"""

from largebatch.reproduce.published import Published, load_published
from largebatch.reproduce.rules import Verdict
from largebatch.reproduce.spec import Table, load_table

__all__ = ["Published", "Table", "Verdict", "load_published", "load_table"]
