"""The Ray Tune function trainable: one trial = one ``largebatch.train.runner.train`` run.

The trial's run directory is ``<sweep folder>/runs/<run id>`` (the run id travels in the trial's config, see
:mod:`largebatch.sweep.plan`), an absolute path outside Ray's temporary trial folders. When that directory
already holds a run (a retry after a failure, or a trial left unfinished by an interrupted sweep and resumed),
training resumes it: from ``checkpoints/last.ckpt`` when there is one, else
from step 0 with the earlier rows kept in the files and superseded (see ``largebatch.records.store``). A run that
already finished (completed or diverged) is not trained again: its stored outcome is reported, which keeps a
sweep killed before its trial index caught up from repeating finished trials. The run's ``provenance.json``
holds the driver's launch provenance (:func:`largebatch.sweep.launch.launch_provenance`) over the trial's own.
When the driver is stopped (SIGINT, SIGTERM), its stop request ends training as SIGTERM would (the run records
``interrupted`` and finishes W&B) and the trial then waits for Tune to stop it (see :mod:`largebatch.sweep.stopping`).

With ``devices_per_trial`` = 1 the run trains inside the trial's actor. With n > 1 the trial drives a Ray Train
``TorchTrainer`` of n workers, each running the same ``train`` with Lightning's ``RayDDPStrategy`` and
``RayLightningEnvironment``; rank 0's reports reach Tune through ``TuneReportCallback``. Training code lives in
:mod:`largebatch.sweep.training`, imported only by the processes that train.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from largebatch.records.store import CONFIG, RunStore
from largebatch.sweep.folder import FINISHED, SweepFolder
from largebatch.sweep.plan import RUN_ID, trial_params
from largebatch.sweep.reporting import finished_result
from largebatch.sweep.resources import TrialResources
from largebatch.sweep.space import Sweep
from largebatch.sweep.stopping import stop_request


@dataclass(frozen=True)
class TrialSpec:
    """What every trial of a sweep shares (sent once to the cluster with ``tune.with_parameters``)."""

    sweep: Sweep
    folder: SweepFolder
    resources: TrialResources
    provenance: dict[str, Any]


def run_trial(config: dict[str, Any], spec: TrialSpec) -> None:
    """Tune's entry point for one trial: ``config`` holds its parameters (grid labels and sampled values) and
    its run id."""
    from ray import tune

    params, run_id = trial_params(config), config[RUN_ID]
    run_dir = spec.folder.runs_dir / run_id
    if run_dir.exists() and not (run_dir / CONFIG).is_file():
        shutil.rmtree(run_dir)  # an attempt that stopped before writing anything a resume could use
    resume = run_dir.exists()
    if resume and (summary := RunStore.open(run_dir).read_summary())["status"] in FINISHED:
        tune.report(finished_result(summary, spec.sweep.config.metric, spec.sweep.config.mode))
        return  # finished before the sweep's own record caught up (e.g. the sweep was killed): not trained again
    request = stop_request(spec.folder)
    if request.exists():
        wait_to_be_stopped(request)  # started while the sweep stops: Tune stops it before it trains
    if spec.resources.workers == 1:
        from largebatch.sweep.training import StopWhenRequested, train_trial

        try:
            train_trial(params, spec.sweep, run_dir, resume, tune.report, spec.provenance,
                        callbacks=(StopWhenRequested(request),))
        except SystemExit:  # Lightning's SIGTERMException: recorded interrupted; not an error for Tune to retry
            if request.exists():
                wait_to_be_stopped(request)
            raise
    else:
        _run_data_parallel(params, spec, run_dir, resume, run_id)


def wait_to_be_stopped(request: Path, poll_s: float = 0.5) -> None:
    """Block while the sweep's stop request stands: the driver then has Tune stop this trial, which must not
    end on its own meanwhile (Tune would count an ending trial as finished, or retry a failed one)."""
    while request.exists():
        time.sleep(poll_s)
    raise RuntimeError(f"the sweep's stop request {request} was withdrawn before Tune stopped this trial")


def _rank(config: dict[str, Any]) -> None:
    """A data-parallel trial's Ray Train worker (see :func:`largebatch.sweep.training.train_rank`)."""
    from largebatch.sweep.training import train_rank

    train_rank(config)


def _run_data_parallel(params: dict[str, Any], spec: TrialSpec, run_dir: Path, resume: bool, run_id: str) -> None:
    import ray.train
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    r = spec.resources
    trainer = TorchTrainer(
        _rank,
        train_loop_config={"params": params, "sweep": spec.sweep, "run_dir": str(run_dir), "resume": resume,
                           "provenance": spec.provenance},
        scaling_config=ray.train.ScalingConfig(num_workers=r.workers, use_gpu=r.gpu > 0,
                                               resources_per_worker={"CPU": r.cpu, "GPU": r.gpu}),
        run_config=ray.train.RunConfig(name=f"train-{run_id}", storage_path=str(spec.folder.ray_dir / "train"),
                                       callbacks=[TuneReportCallback()]),
    )
    trainer.fit()
