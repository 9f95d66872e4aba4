"""Pipelines sent to the cluster through RemoteEnvironment give the same outputs as locally."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from distributed_pipelines import PIPELINES, ByParity, double
from sage.kernel.api import LocalEnvironment, RemoteEnvironment
from sage.kernel.errors import JobFailedError, PipelineDefinitionError, SageError

pytestmark = pytest.mark.integration


def remote(cluster, name: str = "test", **config) -> RemoteEnvironment:
    return RemoteEnvironment(name, port=cluster.jobmanager_port, config=config or None)


def outputs(env, pipeline) -> Counter:
    pipeline(env)
    result = env.execute()
    assert result.status == "finished"
    return Counter(result.collected())


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_same_outputs_on_local_local_ray_and_remote(cluster, name):
    pipeline = PIPELINES[name]
    local = outputs(LocalEnvironment(name), pipeline)
    on_ray = outputs(LocalEnvironment(name, config={"runtime": "ray", "ray": {"address": cluster.gcs_address}}),
                     pipeline)
    through_jobmanager = outputs(remote(cluster, name), pipeline)
    assert local == on_ray == through_jobmanager


def test_keyed_state_counts_every_record_of_a_key_in_one_instance(cluster):
    env = remote(cluster, "keyed")
    PIPELINES["keyed_counts"](env, n=3000)
    counts = env.execute().collected()
    final = {}
    for word, count in counts:
        final[word] = max(final.get(word, 0), count)
    assert final == {"apple": 600, "banana": 600, "cherry": 600, "date": 600, "elder": 600}


def test_custom_partitioner_picks_the_instance(cluster):
    env = remote(cluster, "custom")
    PIPELINES["custom_partitioned"](env, n=200)
    tagged = env.execute().collected()
    assert len(tagged) == 200
    assert all(index == ByParity().partition(record, 2) for index, record in tagged)


def test_module_functions_are_shipped_by_value(cluster):
    env = remote(cluster, "module")
    env.from_collection([1, 2, 3]).map(double).collect()
    assert sorted(env.execute().collected()) == [2, 4, 6]


def test_operators_get_the_resources_they_ask_for(cluster):
    env = remote(cluster, "fits")
    env.from_collection(range(100)).map(double, parallelism=2, resources={"num_cpus": 1, "memory": "100MB"}).collect()
    result = env.execute()
    assert sorted(result.collected()) == [x * 2 for x in range(100)]


def test_a_request_no_node_can_satisfy_fails_at_submit(cluster):
    env = remote(cluster, "too-big")
    env.from_collection(range(10)).map(double, name="embed", resources={"num_gpus": 1}).collect()
    with pytest.raises(SageError, match=r"operator 'embed' asks each instance for GPU=1.*missing GPU=1"):
        env.submit()


def test_the_job_budget_caps_what_its_operators_use(cluster):
    env = remote(cluster, "over-budget", ray={"num_cpus": 1})
    env.from_collection(range(10)).map(double, parallelism=2, resources={"num_cpus": 1}).collect()
    with pytest.raises(SageError, match=r"ask for 2 CPU in all .*budget is 1 CPU"):
        env.submit()


def test_an_unpicklable_function_is_refused_when_added(cluster):
    lock = threading.Lock()
    env = remote(cluster, "unpicklable")
    with pytest.raises(PipelineDefinitionError, match="cannot be pickled"):
        env.from_collection([1]).map(lambda x: (lock, x)[1])


def test_a_failing_function_fails_the_job_naming_the_operator(cluster):
    def explode(x):
        if x == 7:
            raise ValueError("seven")
        return x

    env = remote(cluster, "failing")
    env.from_collection(range(20)).map(explode, parallelism=2).collect()
    with pytest.raises(JobFailedError, match=r"operator 'explode' .* failed on record 7: ValueError: seven"):
        env.execute()


def test_submit_returns_a_handle(cluster):
    env = remote(cluster, "handle")
    env.from_collection(range(10)).map(double).collect()
    job = env.submit()
    result = job.wait(timeout=120)
    assert job.status() == "finished"
    assert sorted(result.collected()) == [x * 2 for x in range(10)]
    assert result.metrics["double"]["records_in"] == 10
