"""A small corpus the tests write: ten documents, each the only one holding its answer."""

from __future__ import annotations

from pathlib import Path

DOCUMENTS = {
    "lighthouse.md": (
        "# The Kerrow Island lighthouse\n\nThe lighthouse on Kerrow Island was designed in 1847 by the "
        "engineer Margaret Vance. Its lamp was first lit with whale oil, and the keepers rowed supplies "
        "across the strait every second week. The tower is painted with red and white bands."
    ),
    "sourdough.md": (
        "# Keeping a sourdough starter\n\nFeed the starter with equal weights of rye flour and water "
        "every twelve hours. A healthy starter doubles in size within six hours and smells of yoghurt; "
        "a layer of grey liquid on top means it is hungry."
    ),
    "volcano.md": (
        "# Mount Tarrel\n\nMount Tarrel is a stratovolcano that last erupted in 1912. Its ash cloud "
        "closed the harbour for three weeks, and the eruption left a crater lake that is now a nature "
        "reserve for flamingos."
    ),
    "chess.md": (
        "# The Ostrava chess club\n\nThe Ostrava chess club meets on Thursday evenings in the old "
        "railway station. Its founder, Pavel Kratochvil, won the regional championship four times "
        "and still plays the Sicilian Defence in every game."
    ),
    "bicycle.md": (
        "# Fixing a flat tyre\n\nTo repair a punctured bicycle inner tube, find the hole by pumping "
        "air and listening, roughen the rubber with sandpaper, apply vulcanising glue, wait two "
        "minutes, then press the patch on firmly."
    ),
    "bees.md": (
        "# How honeybees communicate\n\nForager honeybees perform a waggle dance to tell their "
        "sisters where flowers are. The angle of the dance relative to vertical gives the direction "
        "of the food relative to the sun, and its length gives the distance."
    ),
    "telescope.md": (
        "# The Harlow observatory\n\nThe Harlow observatory houses a refracting telescope with a "
        "lens 91 centimetres wide, ground by hand in 1893. Visitors may look through it on clear "
        "Saturday nights between October and March."
    ),
    "tea.md": (
        "# Brewing green tea\n\nGreen tea should be brewed with water at about 75 degrees Celsius "
        "for no more than two minutes. Boiling water scorches the leaves and makes the tea bitter."
    ),
    "glacier.md": (
        "# The Sorvik glacier\n\nThe Sorvik glacier has retreated 2.4 kilometres since measurements "
        "began in 1930. Meltwater from it feeds a turquoise river that powers a small hydroelectric "
        "plant supplying the village of Sorvik."
    ),
    "compiler.md": (
        "# The Quill compiler\n\nQuill is a compiler for a small teaching language. It translates "
        "source code into WebAssembly in three passes: parsing, type checking with Hindley-Milner "
        "inference, and code generation."
    ),
}

QUESTIONS = {
    "Who designed the lighthouse on Kerrow Island?": "lighthouse.md",
    "How often should a sourdough starter be fed?": "sourdough.md",
    "When did Mount Tarrel last erupt?": "volcano.md",
    "Where does the Ostrava chess club meet?": "chess.md",
    "How do I patch a punctured bicycle inner tube?": "bicycle.md",
    "How do bees tell each other where flowers are?": "bees.md",
    "How wide is the lens of the Harlow telescope?": "telescope.md",
    "What water temperature is right for green tea?": "tea.md",
    "How far has the Sorvik glacier retreated?": "glacier.md",
    "What does the Quill compiler translate source code into?": "compiler.md",
}


def write_corpus(folder: Path) -> Path:
    """Write the documents into ``folder`` and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in DOCUMENTS.items():
        (folder / name).write_text(text + "\n", encoding="utf-8")
    return folder


def records() -> list[dict[str, str]]:
    """The documents as records with ``id`` and ``text`` (one chunk each)."""
    return [{"id": name, "text": text, "source": name} for name, text in DOCUMENTS.items()]
