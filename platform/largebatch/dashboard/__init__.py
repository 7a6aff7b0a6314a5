"""Scaling and sensitivity dashboards over stored results, built on :mod:`largebatch.analysis`.

    largebatch dashboard runs/quickstart --out dashboard_out        # static HTML, offline; --serve to serve it
    largebatch dashboard --wandb ENTITY/PROJECT                      # the same views as a W&B workspace spec

Modules: ``config`` (the ``dashboards/*.yaml`` schema and the view names), ``pages`` (a view → its tables,
figures, result title and notes), ``figures`` and ``style`` (Plotly), ``site`` (HTML pages, index, CSV, PNG),
``build`` (load once, build every dashboard), ``serve`` (``--serve``), ``workspace`` (W&B), ``command`` (CLI).
"""
