"""Advice in the CLI help runs with what largebatch installs."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

from largebatch.sweep.command import DESCRIPTION


def test_sweep_help_advises_only_commands_the_installed_ray_has() -> None:
    assert "largebatch sweep sweeps/X.yaml --address HEAD:6379" in DESCRIPTION
    for command in sorted(set(re.findall(r"\bray (start|job submit)\b", DESCRIPTION))):
        if command == "job submit" and importlib.util.find_spec("aiohttp_cors") is None:
            # the job server ships with ray[default]: the help may name it only as needing that extra
            assert re.search(r"`ray job submit` needs .*ray\[default\]", DESCRIPTION.replace("\n", " "))
            continue
        ray = Path(sys.executable).parent / "ray"  # the console script ray installs next to the interpreter
        assert subprocess.run([str(ray), *command.split(), "--help"], capture_output=True, timeout=120).returncode == 0
