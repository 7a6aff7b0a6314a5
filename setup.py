"""Build hook (everything else is in pyproject.toml): the wheel carries a copy of the project's YAML.

``experiments/``, ``sweeps/`` and ``dashboards/`` at the top of the repository are the canonical, user-editable
files. ``build_py`` copies their ``*.yaml`` into the built package as ``largebatch/shipped_yaml/`` (keeping the
relative paths between them, e.g. a reproduction sweep's ``../../../experiments/...``), where
:mod:`largebatch.shipped` finds them when no clone is around. Editable installs read the checkout directly.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED_FOLDERS = ("experiments", "sweeps", "dashboards")


class BuildPyWithShippedYaml(build_py):
    """``build_py`` that also copies the top-level YAML folders into ``largebatch/shipped_yaml/``."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / "largebatch" / "shipped_yaml"
        for folder in SHIPPED_FOLDERS:
            for source in sorted((ROOT / folder).rglob("*.yaml")):
                destination = target / source.relative_to(ROOT)
                self.mkpath(str(destination.parent))
                self.copy_file(str(source), str(destination))


setup(cmdclass={"build_py": BuildPyWithShippedYaml})
