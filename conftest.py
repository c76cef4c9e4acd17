"""Root conftest: registers every `tests/fixtures_*.py` module as a pytest plugin.

Each real service the tests use (MLflow server, SLURM cluster, Ray cluster) has its own
fixtures module, so owners of different services never edit the same file.
"""

from pathlib import Path

pytest_plugins = [
    f"tests.{p.stem}" for p in sorted((Path(__file__).parent / "tests").glob("fixtures_*.py"))
]
