"""`export_onnx: true`: the artifact ships model.onnx and model.int8.onnx, and the model card's
onnxruntime code, run as a user would (a fresh interpreter that sees only the unpacked artifact),
predicts what the worker evaluated on the test split, with probabilities within the stated
tolerance of the PyTorch model's (loaded here from the artifact by the card's own PyTorch loader).

The data is test_artifact_parity.py's: texts longer than max_length whose label sits at the end,
so a serving path that truncated otherwise than training did would predict something else.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import extract, jsonl, read_events, write_run_dir
from makam_worker.training.child import EXIT_OK, execute
from makam_worker.training.export_onnx import SKL2ONNX_MISSING, TOLERANCE
from test_artifact_parity import BLOCK_MAKAM, ENDINGS, RUNS, TEST, TRAIN, VALIDATION, loading_code
from test_artifact_parity import worker_predictions  # noqa: F401  (a fixture)

CASES = {
    "encoder": {"epochs": 2},
    # The adapter is the shipped safetensors; the ONNX model is the base with the adapter merged in.
    "decoder": {"epochs": 2},
    # A third input: the character n-gram branch's ids, as textprep.encode makes them.
    "scratch": {"epochs": 2, "char_ngram_buckets": 1024, "char_ngram_sizes": "2-4"},
}


def train(tmp_path, family: str, extra: dict) -> tuple:
    model, hp = RUNS[family]
    hp = {**hp, **({"truncation": "tail"} if family != "tfidf" else {}), **extra, "export_onnx": True}
    run_dir = write_run_dir(tmp_path, "run", hp, model=json.loads(json.dumps(model)), dataset=jsonl(TRAIN),
                            validation=jsonl(VALIDATION))
    spec = json.loads((run_dir / "spec.json").read_text())
    spec["test_dataset"] = str(tmp_path / "test.jsonl")
    (tmp_path / "test.jsonl").write_bytes(jsonl(TEST))
    (run_dir / "spec.json").write_text(json.dumps(spec, ensure_ascii=False))
    assert execute(run_dir) == EXIT_OK, read_events(run_dir)[-1]
    artifact = tmp_path / "downloaded" / "model"
    extract(run_dir / "model.tar.gz", artifact)
    return run_dir, artifact


def onnx_block(card: str) -> str:
    section = card.split("## ONNX", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, section
    return blocks[0]


def run_onnx_block(artifact, texts: list[str]) -> dict:
    """The card's ONNX code with `d` and `texts` filled in, in a fresh interpreter without makam."""
    code = onnx_block((artifact / "README.md").read_text())
    placeholders = ('d = "path/to/unpacked/model"\n', 'texts = ["..."]\n')
    for line in placeholders:
        assert code.count(line) == 1, code
    code = code.replace(placeholders[0], f"d = {str(artifact)!r}\n").replace(placeholders[1], f"texts = {texts!r}\n")
    script = BLOCK_MAKAM + code + "print(json.dumps({'predicted': predicted, 'probabilities': probabilities.tolist()}))\n"
    done = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=artifact.parent, env={"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
                                                    "PATH": "/usr/bin:/bin", "HF_HOME": str(artifact.parent / "hf")})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def pytorch_probabilities(artifact, texts: list[str]) -> np.ndarray:
    """The shipped PyTorch model's probabilities, loaded by the card's own PyTorch loader."""
    import torch

    code = loading_code((artifact / "README.md").read_text())
    code = code.replace('d = "path/to/unpacked/model"\n', f"d = {str(artifact)!r}\n")
    code = code.replace('texts = ["..."]\n', f"texts = {texts!r}\n")
    scope: dict = {}
    exec(compile(code, "card", "exec"), scope)
    with torch.no_grad():
        return scope["model"](**scope["batch"]).logits.double().softmax(-1).numpy()


@pytest.mark.parametrize("family", sorted(CASES))
def test_onnx_predicts_what_pytorch_evaluated(tmp_path, worker_predictions, family):  # noqa: F811
    run_dir, artifact = train(tmp_path, family, CASES[family])
    split, _, evaluated = worker_predictions[-1]
    assert split == "test"
    texts = [row["text"] for row in TEST]

    onnx = json.loads((artifact / "metrics.json").read_text())["onnx"]
    assert onnx["status"] == "exported", onnx
    assert onnx["checked_on"] == "test" and onnx["examples"] == len(TEST) and onnx["tolerance"] == TOLERANCE
    fp32, int8 = onnx["formats"]["onnx_fp32"], onnx["formats"]["onnx_int8"]
    assert fp32["argmax_agreement"] == 1.0 and fp32["max_abs_probability_difference"] <= TOLERANCE
    assert 0.0 <= int8["argmax_agreement"] <= 1.0
    for fmt, files in (("onnx_fp32", ["model.onnx"]), ("onnx_int8", ["model.int8.onnx"])):
        assert onnx["formats"][fmt]["files"] == files
        assert onnx["formats"][fmt]["bytes"] == (artifact / files[0]).stat().st_size > 0
    # Dynamic quantization stores the weights in int8: well under the fp32 file.
    assert int8["bytes"] < fp32["bytes"]
    for fmt in ("pytorch_fp32", "onnx_fp32", "onnx_int8"):
        assert onnx["formats"][fmt]["texts_per_second"] > 0

    card = (artifact / "README.md").read_text()
    assert "| ONNX int8, dynamic quantization (model.int8.onnx) |" in card
    served = run_onnx_block(artifact, texts)
    assert served["predicted"] == evaluated  # batched differently from the worker's evaluation, same labels
    reference = pytorch_probabilities(artifact, texts)
    assert np.abs(np.array(served["probabilities"]) - reference).max() <= TOLERANCE

    # int8 loads and predicts; its agreement is reported, not required (its activation scales are per batch).
    import onnxruntime

    session = onnxruntime.InferenceSession(str(artifact / "model.int8.onnx"))
    assert [i.name for i in session.get_inputs()] == onnx["inputs"]
    ids = np.ones((2, 5), dtype=np.int64)
    inputs = {"input_ids": ids, "attention_mask": ids, "char_ngram_ids": ids}
    logits = session.run(["logits"], {name: inputs[name] for name in onnx["inputs"]})[0]
    assert logits.shape == (2, len(ENDINGS)) and np.isfinite(logits).all()


def test_tfidf_says_why_it_exports_no_onnx(tmp_path):
    run_dir, artifact = train(tmp_path, "tfidf", {})
    onnx = json.loads((artifact / "metrics.json").read_text())["onnx"]
    assert onnx == {"status": "not_exported", "reason": SKL2ONNX_MISSING}
    assert f"## ONNX\n\nNot exported: {SKL2ONNX_MISSING}." in (artifact / "README.md").read_text()
    assert not list(artifact.glob("*.onnx"))
    assert read_events(run_dir)[-1]["state"] == "SUCCEEDED"
