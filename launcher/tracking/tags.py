"""The tags a run carries about its state, shared by the runs and the commands that read them.

    from launcher.tracking.tags import LOST_STATE, STATE_TAG

A module of names only, so `launch jobs`/`status`/`runs` read them without importing what
writes them (`run_info`: git, hashing, host names).
"""

from __future__ import annotations

STATE_TAG = "launcher.state"  # "running", "waiting for requeue", "finished", "lost"...
END_REASON_TAG = "launcher.end_reason"  # why a run ended that did not end itself (run_end.py)
RUN_DIR_TAG = "launcher.run_dir"  # where its heartbeat is (launcher.common.heartbeat)
LOST_STATE = "lost"  # the state tag of a run whose processes died without a word
