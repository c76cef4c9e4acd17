"""Root conftest: registers every `tests/fixtures_*.py` module as a pytest plugin, and keeps
the tests of one shared cluster on one pytest-xdist worker.

Each real service the tests use (MLflow server, SLURM cluster, Ray cluster) has its own
fixtures module, so owners of different services never edit the same file.

`TEST_WORKERS=N bash scripts/test.sh` runs the suite on N xdist workers (`--dist loadgroup`;
one process by default). A session fixture runs once per worker, so the tests that share the
one SLURM cluster, or the one Ray cluster (fixed ports), are grouped onto a single worker
each; every other test goes wherever there is room (an MLflow server per worker, on its own
free port).
"""

from pathlib import Path

import pytest

pytest_plugins = [
    f"tests.{p.stem}" for p in sorted((Path(__file__).parent / "tests").glob("fixtures_*.py"))
]

# group: the fixture that makes a test need it, and the test files that drive it themselves.
_GROUPS = {
    "slurm": ("slurm_cluster", ("tests/backends/test_slurm.py",)),
    "ray": ("ray_cluster", ("tests/backends/test_ray.py",)),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath)).as_posix()
        fixtures = getattr(item, "fixturenames", ())
        for group, (fixture, files) in _GROUPS.items():
            if fixture in fixtures or path.endswith(files) or item.get_closest_marker(group):
                item.add_marker(pytest.mark.xdist_group(group))
                break
