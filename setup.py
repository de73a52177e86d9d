"""Build hook: the rules live at the top of the repo (``rules/``, data anyone can read and review);
wheels carry a copy as package data (``helix_audit/rules/``), where ``default_rule_files`` finds
them when there is no checkout. Everything else is in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithRules(build_py):
    def run(self) -> None:
        super().run()
        dest = Path(self.build_lib) / "helix_audit" / "rules"
        dest.mkdir(parents=True, exist_ok=True)
        for path in sorted(Path(__file__).resolve().parent.joinpath("rules").glob("*.yaml")):
            shutil.copy2(path, dest / path.name)


setup(cmdclass={"build_py": BuildWithRules})
