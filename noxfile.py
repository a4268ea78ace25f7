"""Developer sessions: ``nox -s tests``, ``nox -s lint``, ``nox -s bench``.

Each session gets its own virtual environment (reused between runs). With ``--no-venv``
they run in the current interpreter and install nothing, so everything the session needs
must already be installed there (``pip install torch==2.13.0 -e '.[dev]'``).

``nox -s bench`` runs every ``benchmarks/bench_*.py`` with its default arguments and prints
their tables; arguments after ``--`` are passed to each script (``nox -s bench -- --quick``).
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "lint"]

ROOT = Path(__file__).parent
TORCH = "torch==2.13.0"


def _has_venv(session: nox.Session) -> bool:
    return not isinstance(session.virtualenv, nox.virtualenv.PassthroughEnv)


def _install_project(session: nox.Session, extras: str = "dev") -> None:
    """torch first (the pinned build), then the project in editable mode with ``extras``."""
    if not _has_venv(session):
        session.log("no virtual environment: using what the current interpreter has")
        return
    session.install(TORCH)
    session.install("-e", f".[{extras}]")


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite."""
    _install_project(session)
    session.run("python", "-m", "pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy."""
    _install_project(session)
    session.run("python", "-m", "ruff", "check", ".")
    session.run("python", "-m", "mypy")  # the files listed in pyproject.toml [tool.mypy]


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmarks/bench_*.py, one after the other (not timed tests: nothing fails on a
    missed target; pass ``-- --strict`` to scripts that support it)."""
    _install_project(session, "dev,lightning,transformers")  # the integrations' benchmarks too
    scripts = sorted((ROOT / "benchmarks").glob("bench_*.py"))
    if not scripts:
        session.error("no benchmarks/bench_*.py found")
    for script in scripts:
        session.log(f"running {script.relative_to(ROOT)}")
        session.run("python", str(script.relative_to(ROOT)), *session.posargs)


@nox.session(venv_backend="none")
def ui(session: nox.Session) -> None:
    """Rebuild the viewer's web app (viewer_ui/, Node.js >= 20.19) from its lockfile into
    kohakuboard/viewer/static/ and record the source hash that tests/viewer/test_bundle.py
    checks. Commit the result: pip install needs no Node.js."""
    session.chdir(ROOT / "viewer_ui")
    session.run("npm", "ci", "--no-audit", "--no-fund", external=True)
    session.run("npm", "run", "build", external=True)
    session.chdir(ROOT)
    session.run("python", "kohakuboard/viewer/bundle.py", "--write", external=True)
