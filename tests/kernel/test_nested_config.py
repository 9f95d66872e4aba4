"""``config["metrics"]`` and ``config["ray"]`` are checked like the top level: a misspelt key
fails when the environment is created and names the keys that are known."""

from __future__ import annotations

import pytest
from sage.kernel.api import LocalEnvironment, PipelineDefinitionError


@pytest.mark.parametrize(("config", "message"), [
    ({"metrics": {"reporter": ["log"]}},
     r"config\['metrics'\]: unknown key\(s\) \['reporter'\]; known keys are \['interval_s', 'reporters', 'timings'\]"),
    ({"metrics": {"reporters": ["prometheus"], "promethues": {"port": 9465}}},
     r"unknown key\(s\) \['promethues'\]; known keys are \['interval_s', 'prometheus', 'reporters', 'timings'\]"),
    ({"metrics": {"interval_s": 0}}, r"config\['metrics'\]\['interval_s'\] must be a number > 0, got 0"),
    ({"metrics": {"reporters": "log"}}, r"config\['metrics'\]\['reporters'\] must be a list of reporter names"),
    ({"metrics": {"reporters": ["log"], "log": 5}}, r"config\['metrics'\]\['log'\] holds the settings"),
    ({"metrics": ["log"]}, r"config\['metrics'\] must be a dict"),
    ({"metrics": {"timings": "off"}}, r"config\['metrics'\]\['timings'\] must be True or False, got 'off'"),
    ({"ray": {"adress": "127.0.0.1:6379"}},
     r"config\['ray'\]: unknown key\(s\) \['adress'\]; known keys are \['address', 'log_to_driver', "
     r"'num_cpus', 'num_gpus'\]"),
    ({"ray": {"num_cpus": "all"}}, r"config\['ray'\]\['num_cpus'\] must be a number >= 0, got 'all'"),
    ({"ray": {"address": 6379}}, r"config\['ray'\]\['address'\] must be a str"),
])
def test_a_wrong_nested_key_or_value_fails_when_the_environment_is_created(config, message):
    with pytest.raises(PipelineDefinitionError, match=message):
        LocalEnvironment(config=config)


def test_known_nested_keys_are_accepted():
    env = LocalEnvironment(config={"metrics": {"reporters": ["log"], "interval_s": 1, "timings": False, "log": {}},
                                   "ray": {"address": "127.0.0.1:6379", "num_cpus": 2, "num_gpus": 0}})
    assert env.config.metrics["interval_s"] == 1 and env.config.ray["num_cpus"] == 2
