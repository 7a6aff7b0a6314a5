"""Stopping a sweep on SIGINT or SIGTERM so that its running trials record ``interrupted`` and finish W&B.

Without this, Ray kills the trial processes outright when the driver is interrupted: the runner's own handling
(``interrupted`` in ``summary.json``, the W&B mirror finished) never runs, and W&B loses the last 32 KiB block of
its offline file, which it keeps in memory until the run finishes. Sending SIGTERM to the trial processes would
not help: a Ray worker's SIGTERM handler (in its main thread) exits the process at once, and the trial trains in
a daemon thread of that worker, where no signal handler can be installed.

So the driver asks instead: on the first SIGINT or SIGTERM, :class:`GracefulStop` writes the sweep folder's
stop request (:func:`stop_request`; every node sees it, as the runs root is shared), and each trial's
:class:`largebatch.sweep.training.StopWhenRequested` callback stops training like Lightning's SIGTERM does,
within half a second: the runner records ``interrupted`` and finishes W&B. Tune keeps running meanwhile, and
once every running trial has recorded its end, or after :data:`GRACE_S`, the callback asks Tune to stop with
Tune's own interrupt signal (SIGUSR1). A second SIGINT or SIGTERM skips the rest of the wait. SIGKILL of the
driver cannot be caught: the sweep's watchdog then kills the cluster, and the unfinished trials' W&B files lose
their tail (``metrics.csv`` keeps every row).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

from largebatch.sweep.folder import SweepFolder
from largebatch.sweep.plan import RUN_ID
from largebatch.records.store import SUMMARY

STOP_REQUEST = "stop-requested"
GRACE_S = 60.0  # a trial stops within a batch; this bounds a trial stuck in its final evaluation or W&B upload
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_request(folder: SweepFolder) -> Path:
    """The file whose existence asks the sweep's trials to stop."""
    return folder.root / STOP_REQUEST


def still_running(run_dir: Path) -> bool:
    """Whether the run in ``run_dir`` has started and not yet recorded how it ended."""
    try:
        return json.loads((run_dir / SUMMARY).read_text(encoding="utf-8")).get("status") == "running"
    except (OSError, ValueError):
        return False  # not started (its summary comes with its first file), or unreadable: nothing to wait for


class GracefulStop(Callback):
    """Tune callback that turns the driver's SIGINT and SIGTERM into a graceful stop (see the module docstring).

    Its handlers are installed when Tune sets the experiment up (after Tune's own SIGINT handler, which they
    replace); the caller restores the previous handlers after ``fit``. :attr:`signal` is the signal that stopped
    the sweep, if any.
    """

    def __init__(self, folder: SweepFolder, grace_s: float = GRACE_S) -> None:
        self.folder, self.grace_s = folder, grace_s
        self.signal: int | None = None
        self._deadline: float | None = None
        self._running: dict[str, Path] = {}  # Tune trial id -> run directory

    def setup(self, **info: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may handle signals (Tune's own handlers are missing too)
        for signum in STOP_SIGNALS:
            signal.signal(signum, self.request)

    def request(self, signum: int, frame: Any) -> None:
        """The signal handler: ask the trials to stop, and give them :attr:`grace_s` to record it."""
        if self.signal is not None:
            self._deadline = time.monotonic()  # asked twice: stop now
            return
        self.signal, self._deadline = signum, time.monotonic() + self.grace_s
        stop_request(self.folder).touch()
        print(f"{signal.Signals(signum).name}: stopping {len(self._running)} running trial(s) (waiting up to "
              f"{self.grace_s:g} s for them to record it; send it again to stop at once)", file=sys.stderr, flush=True)

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._running[trial.trial_id] = self.folder.runs_dir / str(trial.config[RUN_ID])

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._running.pop(trial.trial_id, None)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._running.pop(trial.trial_id, None)

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        if self._deadline is None:
            return
        if time.monotonic() >= self._deadline or not any(map(still_running, self._running.values())):
            self._deadline = None
            signal.raise_signal(signal.SIGUSR1)  # Tune's interrupt: it stops the trials and returns from fit
