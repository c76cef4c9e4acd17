"""Runs as MLflow keeps them: what a run records about itself, reading runs back, the server.

    run_info.py   params flattened and secret-masked; tags (recipe hash, git state, host)
    reader.py     list, compare and plot runs (`launch runs`, `launch compare`)
    server.py     start a local `mlflow server` bound to 127.0.0.1 (`launch ui`)

Imports only `launcher.errors` and `launcher.common` (and mlflow lazily); used by the loggers,
the runtime and the CLI.
"""
