"""Small helpers both halves use (runtime, CLI, backends): one place each.

    files.py     crash-safe writes (temporary file, then rename), optionally durable
    net.py       a free TCP port on 127.0.0.1
    threads.py   helper threads that start without stalling the caller

Imports nothing from the rest of `launcher`.
"""
