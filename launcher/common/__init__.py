"""Small helpers both halves use (runtime, CLI, backends): one place each.

    files.py     crash-safe writes (temporary file, then rename), optionally durable
    net.py       a free TCP port on 127.0.0.1
    process.py   whether a pid names a live process (not a zombie)
    secrets.py   the one rule for secrets (key words, URL credentials): mask before upload
    threads.py   helper threads that start without stalling the caller
    validate.py  dicts from YAML/JSON into dataclasses, with errors that list the valid keys

Imports nothing from the rest of `launcher` but `launcher.errors`; anything may import it.
"""
