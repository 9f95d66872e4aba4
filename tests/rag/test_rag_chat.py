"""examples/rag_chat.py answers each question as soon as it is typed, while standard input is
still open: a question's record streams from QuerySource() through retrieval and the answer step
to the sink without waiting for more input or for the end of it.

The example runs as a subprocess on a small document folder, a SAGE home of its own (the
autouse ``sage_home`` fixture) and the extractive answer step (no LLM endpoint).
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "rag_chat.py"
FIRST_ANSWER_S = 180  # ingesting the documents and loading MiniLM twice, on a slow CPU
DIAGNOSE_S = 60  # after a missing first answer: does it come once standard input is closed?
NEXT_ANSWER_S = 60
EXIT_S = 60
DOCS = {
    "keys.md": "# Keys\n\nThe key_by operator routes every record with the same key to the same "
               "parallel instance, so state per key stays in one place.\n",
    "errors.md": "# Errors\n\nA record that an operator cannot process is written to the dead letter "
                 "folder of the job, and the job goes on.\n",
}
QUESTIONS = [("How does key_by route records?", "keys.md"),
             ("What happens to a record that an operator cannot process?", "errors.md")]


class Lines:
    """Standard output of the subprocess, read line by line on a thread, so that waiting for
    a line has a deadline and the test never hangs on the pipe."""

    def __init__(self, stream: IO[str]) -> None:
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self.queue.put(line)
        self.queue.put(None)

    def block(self, timeout_s: float) -> list[str] | None:
        """The next answer block (its lines up to the empty line that ends it), or None when
        it is not complete within ``timeout_s`` or the output ends first."""
        deadline = time.monotonic() + timeout_s
        block: list[str] = []
        while True:
            try:
                line = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if line is None:
                self.queue.put(None)  # stays at its end for later calls
                return None
            self.seen.append(line)
            line = line.rstrip("\n")
            if line:
                block.append(line)
            elif block:
                return block


def ask(process: subprocess.Popen[str], question: str) -> None:
    assert process.stdin is not None
    process.stdin.write(question + "\n")
    process.stdin.flush()


def check_block(block: list[str], question: str, source: str) -> None:
    assert block[0] == f"question: {question}", block
    assert block[1].startswith("answer: [extractive answer"), block
    assert any(line.strip().startswith(f"[1] {source} ") for line in block[2:]), block


@pytest.mark.integration
@pytest.mark.timeout(FIRST_ANSWER_S + DIAGNOSE_S + NEXT_ANSWER_S + EXIT_S + 60)
def test_each_question_is_answered_while_input_is_still_open(tmp_path: Path, sage_home: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    env = {key: value for key, value in os.environ.items()
           if key not in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "OPENAI_MODEL", "PYTHONUNBUFFERED")}
    env.update(SAGE_HOME=str(sage_home), HF_HUB_OFFLINE="1")
    stderr_path = tmp_path / "stderr.txt"

    with stderr_path.open("w") as stderr:
        process = subprocess.Popen([sys.executable, str(EXAMPLE), "--docs", str(docs)], cwd=tmp_path, env=env,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                                   text=True, encoding="utf-8")

    def log() -> str:
        return "\n--- its standard error (end) ---\n" + stderr_path.read_text(errors="replace")[-3000:]

    try:
        assert process.stdout is not None and process.stdin is not None
        lines = Lines(process.stdout)
        (first, first_source), (second, second_source) = QUESTIONS

        ask(process, first)
        began = time.monotonic()
        block = lines.block(FIRST_ANSWER_S)
        if block is None:
            exited = process.poll()
            if exited is not None:
                pytest.fail(f"rag_chat.py exited with status {exited} before answering question 1; "
                            f"its output: {''.join(lines.seen)!r}" + log())
            process.stdin.close()
            late = lines.block(DIAGNOSE_S)
            when = ("it came only after standard input was closed: the question's record waited for "
                    "the end of input instead of streaming to the sink" if late is not None else
                    f"it did not come within {DIAGNOSE_S} s of closing standard input either")
            pytest.fail(f"no answer to question 1 within {FIRST_ANSWER_S} s while standard input was open; "
                        f"{when}. Output so far: {''.join(lines.seen)!r}" + log())
        first_after_s = time.monotonic() - began
        assert process.poll() is None, "rag_chat.py exited before question 2 was written" + log()
        check_block(block, first, first_source)
        expected_lines = len(block) + 1

        ask(process, second)  # only now, after the first answer
        block = lines.block(NEXT_ANSWER_S)
        assert block is not None, (f"no answer to question 2 within {NEXT_ANSWER_S} s while standard input "
                                   f"was open (question 1 was answered after {first_after_s:.1f} s); output: "
                                   f"{''.join(lines.seen)!r}" + log())
        check_block(block, second, second_source)
        expected_lines += len(block) + 1

        process.stdin.close()
        status = process.wait(timeout=EXIT_S)
        assert status == 0, f"rag_chat.py exited with status {status} at end of input" + log()
        assert lines.block(5) is None and len(lines.seen) == expected_lines, \
            f"standard output holds more than the two answers: {''.join(lines.seen)!r}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
