"""Sweeps: many runs of one experiment over a grid × sampled keys, with Ray Tune, Optuna and W&B (offline).

    from largebatch.sweep import load_sweep, SweepFolder, sweep_table
    from largebatch.sweep.launch import run_sweep        # imports Ray

    sweep = load_sweep("sweeps/quickstart.yaml")           # every trial's experiment validated here
    folder = SweepFolder.of("runs", sweep.name)
    run_sweep(sweep, folder)                               # or: largebatch sweep sweeps/quickstart.yaml
    sweep_table(folder)                                    # or: largebatch sweep status quickstart

Modules, bottom up: ``config`` (the sweep file schema), ``space`` (grid cells, sampled keys, each trial's
experiment), ``folder`` (the results folder), ``plan`` (the trials still to run, rebuilt from the folder at every
start, without Ray), ``status`` (the trials table, without Ray), ``reporting`` (what a trial reports to Tune),
``resources`` (per-trial CPUs/GPUs from the cluster), ``search`` (the planned searcher, the Optuna study behind it,
ASHA; how grid × Optuna works is documented there), ``trial`` (the Tune function trainable, single-process or Ray
Train data-parallel), ``progress`` (trial index and live table), ``cluster`` (a loopback-only local cluster, or an
existing one) with its ``watchdog``, ``launch`` (Tuner, resume), ``command`` (the CLI).
This package imports ``largebatch.train``; nothing in ``largebatch.train`` knows about sweeps.
"""

from largebatch.sweep.config import SweepConfig
from largebatch.sweep.folder import SweepFolder
from largebatch.sweep.space import Sweep, load_sweep
from largebatch.sweep.status import sweep_table

__all__ = ["Sweep", "SweepConfig", "SweepFolder", "load_sweep", "sweep_table"]
