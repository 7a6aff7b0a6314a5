"""The W&B mirror of a run: Lightning's ``WandbLogger``, offline unless the user opted in, never blocking."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import WandbLogger

from largebatch.train.config import WandbConfig

log = logging.getLogger(__name__)


def has_credentials() -> bool:
    """An API key in the environment or a netrc entry written by ``wandb login``."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def effective_mode(config: WandbConfig) -> str:
    """``online`` only when asked for and credentials exist; otherwise ``offline`` (or ``disabled``)."""
    if config.mode == "online" and not has_credentials():
        log.warning("W&B online mode requested but no API key found; logging offline (upload later with `wandb sync`)")
        return "offline"
    return config.mode


def wandb_logger(config: WandbConfig, run_dir: Path, run_id: str, run_config: dict[str, Any]) -> WandbLogger | None:
    """A ``WandbLogger`` writing under ``run_dir/wandb`` (offline by default), or None when disabled."""
    mode = effective_mode(config)
    if mode == "disabled":
        return None
    os.environ.setdefault("WANDB_SILENT", "true")
    if mode == "offline":
        os.environ["WANDB_MODE"] = "offline"
    return WandbLogger(
        project=config.project, entity=config.entity, group=config.group, tags=list(config.tags),
        name=run_id, id=run_id, save_dir=str(run_dir), offline=mode == "offline", config=run_config,
        log_model=False, settings={"init_timeout": 60, "console": "off"} if mode == "online" else {"console": "off"},
    )


def finish(exit_code: int = 0) -> None:
    """Close the active W&B run so the next run in this process starts a new one (W&B marks a non-zero
    ``exit_code`` as failed).

    Until this call W&B keeps the tail of its offline file (``run-*.wandb``, a log of 32 KiB blocks) in memory: a
    process killed before it (SIGKILL, or its whole process group) loses that tail, all of it for a short run. The
    runner therefore calls it on every way out it can catch: the end, an error, SIGTERM, Ctrl-C.
    """
    wandb = sys.modules.get("wandb")  # never imported unless a run mirrored to W&B
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=exit_code)


def read_offline_history(path: str | Path) -> dict[str, list[float]]:
    """Metric histories stored in an offline run (a ``.wandb`` file or its folder), read locally.

    Uses W&B's own reader (``wandb leet inspect --json``), so no network and no private API is involved.
    """
    import json
    import shutil
    import subprocess

    exe = shutil.which("wandb") or str(Path(sys.executable).with_name("wandb"))
    out = subprocess.run([exe, "leet", "inspect", "--json", str(path)], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    history: dict[str, list[float]] = {}
    for line in out.splitlines():
        record = json.loads(line)
        if record.get("type") == "history":
            for key, value in record["history"]["item"].items():
                if not key.startswith("_"):
                    history.setdefault(key, []).append(value)
    return history
