"""`launch sweep`: many trials of one recipe as one job, each a resumable run of its own.

search.py      the definition (grids, random ranges, seeds) -> trials; pure
record.py      SWEEP_DIR/sweep.json (trials, objective, MLflow parent) and the sweep index
plan.py        SweepPlan: the trial table and each trial's job (`--dry-run` prints it)
local.py       run the trials on this host, one after another or P at once
tracking.py    the MLflow parent run: the definition, the best trial as trials end
results.py     trials' states and objectives (`launch status/compare SWEEP`)
trial_info.py  the tags and params a trial's own run records (read by the worker)
"""
