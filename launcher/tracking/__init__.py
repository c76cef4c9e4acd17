"""Runs as MLflow keeps them: what a run records, where runs live, reading them back, the server.

    run_info.py   what a run records about itself: params flattened and secret-masked; tags
                  (recipe hash, git state, backend, host)
    reader.py     where runs live (tracking URIs, "store unreachable" errors) and reading them
                  back: list, compare, plot (`launch runs`, `launch compare`, `launch ui`)
    sqlite_runs.py  `launch runs` on a local sqlite store, read with the stdlib (no mlflow)
    tags.py       the state tags a run carries (names only: the commands read them cheaply)
    server.py     a local `mlflow server` on 127.0.0.1: start, wait until healthy, stop
    local_store.py  a fresh sqlite store created whole, under a lock, when runs start at once

Writing runs from a training process is `launcher.loggers`' job; it uses reader.py's URI and
error helpers and run_info.py's masking, so a run is named and cleaned the same way everywhere.

Imports only `launcher.errors` and `launcher.common` (mlflow lazily, inside functions; never
torch). Imported by the loggers, the runtime (`launcher.train`) and the CLI.
"""
