"""Prepare what the compiler-free wheel smoke test (.ci/wheel_smoke.py) checks against.

Runs in the development venv (PyTorch + transformers), never in the smoke venv:

1. builds the tests' seeded tiny BERT cross-encoder (tests/model_fixtures.py) as a checkpoint,
2. exports it with the real ``crossrank export`` command,
3. scores a few (query, document) pairs with transformers on the same weights,

and writes ``OUT/model`` (the ONNX model folder) and ``OUT/expected.json`` (pairs + reference logits).

Usage: python .ci/wheel_fixture.py OUT
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from model_fixtures import build_tiny_bert, reference_logits, tiny_texts  # noqa: E402


def main(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    checkpoint = build_tiny_bert(out / "checkpoint", num_labels=1, seed=0)
    model = out / "model"
    subprocess.run(
        [sys.executable, "-m", "crossrank", "export", str(checkpoint), "-o", str(model)], check=True
    )
    query = tiny_texts(1, seed=11, min_words=3, max_words=6)[0]
    documents = tiny_texts(12, seed=12, min_words=2, max_words=30)
    logits = reference_logits(checkpoint, [(query, d) for d in documents], max_length=128)[:, 0]
    expected = {"query": query, "documents": documents, "logits": [float(x) for x in logits]}
    (out / "expected.json").write_text(json.dumps(expected, indent=1))
    shutil.rmtree(checkpoint)  # the smoke test must only see the exported model
    print(f"wheel fixture: {model} + expected.json ({len(documents)} pairs)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]).resolve())
