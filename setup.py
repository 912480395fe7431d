"""Build hook: the top-level ``config/``, ``playbooks/`` and ``templates/`` (the source of truth,
edited where they are) ship inside the wheel as ``penguinctl/_shipped/``. Everything else about
the package is declared in pyproject.toml. An editable install copies nothing: penguinctl reads
them in the checkout (``penguinctl/shipped.py``)."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ("config", "playbooks", "templates")
HERE = Path(__file__).resolve().parent


class BuildPyWithShipped(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "penguinctl" / "_shipped"
        if target.exists():
            shutil.rmtree(target)
        for kind in SHIPPED:
            shutil.copytree(
                HERE / kind, target / kind, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = list(super().get_outputs(include_bytecode))
        if getattr(self, "editable_mode", False):
            return outputs
        target = Path(self.build_lib) / "penguinctl" / "_shipped"
        for kind in SHIPPED:
            for path in sorted((HERE / kind).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    outputs.append(str(target / kind / path.relative_to(HERE / kind)))
        return outputs


setup(cmdclass={"build_py": BuildPyWithShipped})
