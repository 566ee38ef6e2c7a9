"""Property-based fuzzing of the served OpenAPI document with schemathesis: no 5xx, ever.

Runs the schemathesis CLI against a real ``crossrank serve`` process (bounded: 30 examples per
operation, fixed seed). Besides ``not_a_server_error`` it checks that responses match the
documented status codes, content types and response schemas, and that schema-valid requests are
accepted and schema-invalid ones rejected.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("schemathesis")

from server_process import FAKE, FAKE_EMBED, ServerProcess

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "positive_data_acceptance",
        "negative_data_rejection",
    ]
)


def run_schemathesis(srv: ServerProcess, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    exe = shutil.which("schemathesis") or shutil.which("st")
    cmd = [exe] if exe else [sys.executable, "-m", "schemathesis.cli"]
    argv = [
        *cmd,
        "run",
        srv.url + "/openapi.json",
        "--checks",
        CHECKS,
        "--max-examples",
        "30",
        "--seed",
        "7",
        "--workers",
        "1",
        "--report-dir",
        str(tmp_path),
        *extra,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=240, cwd=tmp_path)


@pytest.mark.parametrize("model", ["fake", "tiny-bert"])
def test_schemathesis_finds_no_server_errors(tmp_path, request, model):
    if model == "fake":
        args = [*FAKE, *FAKE_EMBED]
    else:  # the real tokenizer and ONNX model on fuzzed text
        args = ["--model", str(request.getfixturevalue("tiny_bert_onnx"))]
    srv = ServerProcess([*args, "--api-key", "secret-key"])
    try:
        p = run_schemathesis(srv, tmp_path, "--header", "Authorization: Bearer secret-key")
    finally:
        assert srv.stop()
    assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-2000:]
    statuses = [json.loads(line).get("status") for line in srv.logs().splitlines() if '"access"' in line]
    assert statuses.count(200) > 50  # the fuzzer got through the key check to the handlers
    assert not [s for s in statuses if s is not None and s >= 500]
