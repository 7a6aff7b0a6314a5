"""Takes a local Ray cluster down with the process that started it, however that process ends.

Ray ties ``gcs_server`` and ``raylet`` to the driver that started them (``prctl(PR_SET_PDEATHSIG)``), but the
agents the raylet starts (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``) outlive a driver killed with
SIGKILL: they wait for a GCS that is gone, forever. So :func:`largebatch.sweep.cluster.ray_session` starts this
script as a separate process (``python -I .../watchdog.py``, in its own session so that Ctrl-C in the
terminal does not reach it) before it starts Ray. The watchdog

- says ``ready`` on its standard output once it knows the driver's processes before the cluster;
- records, every ``POLL_S`` seconds, the processes below its parent (the driver) that were not there when it
  started: Ray's processes, its workers and their children;
- waits for its standard input to close: the driver closes it after ``ray.shutdown()``, and the kernel closes it
  when the driver dies, whatever killed it;
- then kills (SIGKILL) every recorded process still alive, with its children, and exits.

A process is recorded with its start time (``psutil.Process`` compares it), so a recycled PID is never killed.
"""

from __future__ import annotations

import os
import select
import sys

import psutil

POLL_S = 0.5


def new_descendants(driver: psutil.Process, before: set[int]) -> list[psutil.Process]:
    """The processes below ``driver`` that are not in ``before`` (nor this watchdog)."""
    try:
        found = driver.children(recursive=True)
    except psutil.Error:  # the driver just ended: keep what was recorded
        return []
    return [p for p in found if p.pid not in before and p.pid != os.getpid()]


def kill_all(processes: list[psutil.Process]) -> None:
    """SIGKILL every process of ``processes`` that is still the same process, and its children."""
    alive = [p for p in processes if p.is_running()]
    for process in list(alive):
        try:
            alive += process.children(recursive=True)
        except psutil.Error:
            continue
    for process in alive:
        try:
            process.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(alive, timeout=10)


def watch(stdin_fd: int, poll_s: float = POLL_S) -> None:
    """Record the parent's new descendants until ``stdin_fd`` reaches end of file, then kill them."""
    driver = psutil.Process(os.getppid())
    before = {p.pid for p in driver.children(recursive=True)}
    print("ready", flush=True)
    recorded: dict[int, psutil.Process] = {}
    while True:
        recorded.update((p.pid, p) for p in new_descendants(driver, before))
        ready, _, _ = select.select([stdin_fd], [], [], poll_s)
        if ready and not os.read(stdin_fd, 4096):
            break
    kill_all(list(recorded.values()))


if __name__ == "__main__":
    watch(sys.stdin.fileno())
