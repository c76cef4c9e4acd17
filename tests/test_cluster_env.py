"""ClusterEnvironment: who a process is, under torchrun, SLURM, or alone."""

from __future__ import annotations

from launcher.cluster_env import ClusterEnvironment, expand_hostlist


def test_single_process_by_default() -> None:
    env = ClusterEnvironment.detect({})
    assert (env.kind, env.global_rank, env.world_size) == ("single", 0, 1)


def test_torchrun_variables() -> None:
    env = ClusterEnvironment.detect({
        "RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2",
        "GROUP_RANK": "1", "MASTER_ADDR": "10.0.0.5", "MASTER_PORT": "1234",
        "TORCHELASTIC_RUN_ID": "r", "TORCHELASTIC_RESTART_COUNT": "2",
        "TORCHELASTIC_USE_AGENT_STORE": "True",
    })  # fmt: skip
    assert env.kind == "torchrun" and env.global_rank == 3 and env.node_rank == 1
    assert env.main_address == "10.0.0.5" and env.main_port == 1234
    assert env.restart_count == 2 and env.agent_store and not env.is_global_zero


def test_slurm_variables_give_rank_nodes_and_a_job_derived_port() -> None:
    environ = {
        "SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_NODEID": "2",
        "SLURM_JOB_NUM_NODES": "4", "SLURM_JOB_NODELIST": "gpu[07-10]", "SLURM_JOB_ID": "4242",
        "SLURM_RESTART_COUNT": "1",
    }  # fmt: skip
    env = ClusterEnvironment.detect(environ)
    assert env.kind == "slurm" and env.global_rank == 5 and env.world_size == 8
    assert env.local_world_size == 2 and env.node_rank == 2 and env.main_address == "gpu07"
    assert env.job_id == "4242" and env.restart_count == 1
    assert env.main_port == ClusterEnvironment.detect(environ).main_port  # same on every task
    other = ClusterEnvironment.detect({**environ, "SLURM_JOB_ID": "4243"})
    assert other.main_port != env.main_port


def test_torchrun_inside_slurm_prefers_torchrun() -> None:
    env = ClusterEnvironment.detect({"SLURM_PROCID": "0", "SLURM_NTASKS": "1",
                                     "RANK": "1", "WORLD_SIZE": "2"})  # fmt: skip
    assert env.kind == "torchrun" and env.global_rank == 1


def test_expand_hostlist() -> None:
    assert expand_hostlist("n[1-3,7],login") == ["n1", "n2", "n3", "n7", "login"]
    assert expand_hostlist("gpu[08-10]") == ["gpu08", "gpu09", "gpu10"]
    assert expand_hostlist("single") == ["single"]
