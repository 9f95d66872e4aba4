"""Pictures of a pipeline: env.explain(), plan.to_mermaid() and plan.to_dot()."""

from __future__ import annotations

from sage.kernel.api import LocalEnvironment, Tumbling


def shop(record):
    return record["shop"]


def known_pipeline() -> LocalEnvironment:
    env = LocalEnvironment("sales")
    sales = env.from_collection([{"shop": "a", "t": 1}]).assign_timestamps(lambda r: r["t"])
    counts = sales.key_by(shop).window(Tumbling(10)).count(parallelism=2)
    counts.collect()
    counts.side_output("late").sink(print, name="late", resources={"num_cpus": 0.5})
    return env


def test_the_mermaid_picture_of_a_known_pipeline():
    assert known_pipeline().physical_plan().to_mermaid() == (
        "flowchart LR\n"
        '  c0["CollectionSource<br/>assign_timestamps<br/><i>x1</i>"]\n'
        '  c1["window(Tumbling(size=10, offset=0)).count<br/><i>x2</i>"]\n'
        '  c2["collect<br/><i>x2</i>"]\n'
        '  c3["late<br/><i>x2 [num_cpus=0.5]</i>"]\n'
        '  c0 -- "hash(shop)" --> c1\n'
        '  c1 -- "forward" --> c2\n'
        "  c1 -- \"side output 'late', forward\" --> c3\n"
    )


def test_the_dot_picture_names_every_chain_and_edge():
    dot = known_pipeline().physical_plan().to_dot()
    assert dot.startswith('digraph "sales" {')
    assert 'c0 [label="CollectionSource\\nassign_timestamps\\nx1"];' in dot
    assert 'c0 -> c1 [label="hash(shop)"];' in dot
    assert "c1 -> c3 [label=\"side output 'late', forward\"];" in dot


def test_explain_prints_chains_and_with_metrics_their_counts(capsys):
    env = known_pipeline()
    text = env.explain()
    assert capsys.readouterr().out.strip() == text
    assert text.splitlines()[:4] == [
        "pipeline 'sales': 4 chain(s), 7 task(s)",
        "chain 0 (fused) x1",
        "  source   CollectionSource",
        "  map      assign_timestamps",
    ]
    result = env.execute()
    counted = env.physical_plan().explain(result.metrics)
    assert "  sink     collect in=1 out=0" in counted.splitlines()
