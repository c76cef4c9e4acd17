"""The search: trials from a sweep's definition (pure: no files, no clock)."""

from __future__ import annotations

import math

import pytest

from launcher.errors import UserError
from launcher.sweep.plan import trial_command
from launcher.sweep.search import (
    Range,
    SearchSpace,
    add_ranges,
    make_trials,
    parse_grid,
    parse_range,
    space_from_yaml,
)


def test_grids_make_their_product_in_order_and_seeds_repeat_each_point():
    space = SearchSpace(grid=parse_grid(["lr=0.1,0.01", "hidden=16,32"]), seed=5, seeds=2)
    trials = make_trials(space)
    assert [(t.index, t.params, t.seed) for t in trials[:3]] == [
        (0, {"lr": "0.1", "hidden": "16"}, 5),
        (1, {"lr": "0.1", "hidden": "16"}, 6),
        (2, {"lr": "0.1", "hidden": "32"}, 5),
    ]
    assert len(trials) == 8 and trials[-1].params == {"lr": "0.01", "hidden": "32"}
    # One seed: the trials keep --seed (None: the recipe's default seed).
    assert {t.seed for t in make_trials(SearchSpace(grid={"lr": ["1"]}))} == {None}


def test_random_search_with_a_fixed_seed_draws_the_same_trials_twice():
    space = SearchSpace(random=6, seed=7)
    add_ranges(space, "loguniform", ["lr=1e-4:1e-2"])
    add_ranges(space, "uniform", ["dropout=0.0:0.5"])
    add_ranges(space, "choice", ["hidden=16,32"])
    first, again = make_trials(space), make_trials(space)
    assert first == again
    other = make_trials(SearchSpace(random=6, seed=8, ranges=space.ranges))
    assert [t.params for t in other] != [t.params for t in first]
    for trial in first:
        assert 1e-4 <= float(trial.params["lr"]) <= 1e-2
        assert 0.0 <= float(trial.params["dropout"]) <= 0.5
        assert trial.params["hidden"] in ("16", "32")
    # Log-uniform: spread over the decades, not bunched at the top.
    logs = [
        math.log10(float(t.params["lr"]))
        for t in make_trials(
            SearchSpace(random=200, seed=0, ranges={"lr": Range("loguniform", 1e-4, 1e-2)}), 256
        )
    ]
    assert sum(x < -3 for x in logs) > 60


def test_a_grid_and_a_random_search_combine_each_point_with_each_draw():
    space = SearchSpace(
        grid={"hidden": ["8", "16"]}, random=3, seed=0, ranges={"lr": Range("uniform", 0.0, 1.0)}
    )
    trials = make_trials(space)
    assert len(trials) == 6
    assert [t.params["lr"] for t in trials[:3]] == [t.params["lr"] for t in trials[3:]]


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (SearchSpace(), "empty search"),
        (SearchSpace(ranges={"lr": Range("uniform", 0, 1)}), "add --random N"),
        (SearchSpace(random=3), "draws from ranges"),
        (SearchSpace(grid={"a": ["1"] * 17, "b": ["2"] * 16}), "more than --max-trials 256"),
    ],
)
def test_an_empty_or_too_large_search_is_a_user_error(space, message):
    with pytest.raises(UserError, match=message):
        make_trials(space)


@pytest.mark.parametrize(
    ("kind", "pair", "message"),
    [
        ("uniform", "lr=0.1", "KEY=LOW:HIGH"),
        ("uniform", "lr=2:1", "LOW < HIGH"),
        ("loguniform", "lr=0:1", "0 < LOW < HIGH"),
        ("choice", "hidden=", "KEY=VALUES"),
    ],
)
def test_malformed_ranges_name_the_form(kind, pair, message):
    with pytest.raises(UserError, match=message):
        parse_range(kind, pair)


def test_malformed_grids_and_repeated_keys_are_user_errors():
    with pytest.raises(UserError, match="KEY=VALUES"):
        parse_grid(["lr"])
    with pytest.raises(UserError, match="given twice"):
        parse_grid(["lr=1", "lr=2"])
    space = SearchSpace(grid={"lr": ["1"]})
    with pytest.raises(UserError, match="searched twice"):
        add_ranges(space, "uniform", ["lr=0:1"])


def test_a_sweep_yaml_holds_the_same_search_and_settings():
    space, settings = space_from_yaml(
        {"grid": {"hidden": [16, 32]}, "random": 2, "loguniform": {"lr": "1e-4:1e-2"},
         "choice": {"act": ["relu", "gelu"]}, "seed": 3, "seeds": 2, "metric": "val_acc",
         "mode": "max", "max_parallel": 2},
        "sweep.yaml",
    )  # fmt: skip
    assert space.grid == {"hidden": ["16", "32"]} and space.random == 2 and space.seeds == 2
    assert space.ranges["lr"] == Range("loguniform", 1e-4, 1e-2) and space.seed == 3
    assert settings == {"metric": "val_acc", "mode": "max", "max_parallel": 2}
    assert len(make_trials(space)) == 8
    assert space_from_yaml(space.to_dict(), "again")[0] == space  # the definition round-trips
    with pytest.raises(UserError, match=r"unknown keys \['grids'\]; valid keys: grid"):
        space_from_yaml({"grids": {}}, "sweep.yaml")


def test_a_trials_command_is_the_sweeps_flags_minus_the_search_plus_its_point():
    argv = ["sweep", "r.py", "--grid", "lr=0.1,0.01", "--max-steps", "9", "--seeds=2",
            "--metric", "val_acc", "--name", "s", "--dry-run", "--set", "hidden=8"]  # fmt: skip
    assert trial_command(argv, {"lr": "0.1", "x": "a b"}, 3) == (
        "launch r.py --max-steps 9 --set hidden=8 --set lr=0.1 --set 'x=a b' --seed 3"
    )
