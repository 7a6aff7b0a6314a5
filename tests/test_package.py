"""Packaging guards."""

import subprocess
import sys
import sysconfig
from pathlib import Path


def test_platform_is_the_standard_library_module() -> None:
    import platform

    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert Path(platform.__file__).resolve().parent == stdlib
    assert not (Path(__file__).parents[1] / "platform" / "__init__.py").exists()


def test_largebatch_imports_from_platform_dir() -> None:
    import largebatch

    assert Path(largebatch.__file__).resolve().parent.parent.name == "platform"


def test_cli_help_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "largebatch", "--help"], capture_output=True, text=True, check=True)
    assert "largebatch" in out.stdout
