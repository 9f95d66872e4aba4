"""Word count with keyed state: the kernel's smallest complete example.

Run: python examples/wordcount.py
"""

from __future__ import annotations

from sage.kernel.api import LocalEnvironment, MapFunction, RuntimeContext

LINES = [
    "to be or not to be",
    "that is the question",
    "whether tis nobler in the mind to suffer",
]


class CountWords(MapFunction):
    """Keeps a running count per word in keyed state."""

    def open(self, context: RuntimeContext) -> None:
        self.context = context

    def map(self, word: str) -> tuple[str, int]:
        state = self.context.state
        state["count"] = state.get("count", 0) + 1
        return word, state["count"]


def main() -> None:
    env = LocalEnvironment(name="wordcount")
    (env.from_collection(LINES)
        .flat_map(str.split)
        .key_by(lambda word: word)
        .map(CountWords(), parallelism=2)
        .collect())
    result = env.execute()
    totals: dict[str, int] = {}
    for word, count in result.collected():
        totals[word] = max(totals.get(word, 0), count)
    for word, count in sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:5]:
        print(f"{word:10} {count}")
    print(f"{result.status} in {result.duration_s:.3f}s; per operator: "
          + ", ".join(f"{name} in={m['records_in']} out={m['records_out']}" for name, m in result.metrics.items()))


if __name__ == "__main__":
    main()
