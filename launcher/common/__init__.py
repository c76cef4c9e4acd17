"""Small helpers both halves use (runtime, CLI, backends): one place each.

    threads.py   helper threads that start without stalling the caller

Imports nothing from the rest of `launcher`.
"""
