"""`export_onnx: true`: the artifact ships model.onnx and model.int8.onnx, and the model card's
onnxruntime code, run as a user would (a fresh interpreter that sees only the unpacked artifact),
predicts what the worker evaluated on the test split, with probabilities within the stated
tolerance of the PyTorch model's (loaded here from the artifact by the card's own PyTorch loader).

The data is test_artifact_parity.py's: texts longer than max_length whose label sits at the end,
so a serving path that truncated otherwise than training did would predict something else.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from card_blocks import card_block, filled, run_card_block
from conftest import read_events
from makam_worker.training.export_onnx import SKL2ONNX_MISSING, TOLERANCE
from test_artifact_parity import ENDINGS, RUNS, TEST, train_and_download
from test_artifact_parity import worker_predictions  # noqa: F401  (a fixture)

CASES = {
    "encoder": {"epochs": 2},
    # The adapter is the shipped safetensors; the ONNX model is the base with the adapter merged in.
    "decoder": {"epochs": 2},
    # A third input: the character n-gram branch's ids, as textprep.encode makes them.
    "scratch": {"epochs": 2, "char_ngram_buckets": 1024, "char_ngram_sizes": "2-4"},
}


def train(tmp_path, family: str, extra: dict) -> tuple:
    hp = {**RUNS[family][1], **({"truncation": "tail"} if family != "tfidf" else {}), **extra, "export_onnx": True}
    return train_and_download(tmp_path, family, hp)


def pytorch_probabilities(artifact, texts: list[str]) -> np.ndarray:
    """The shipped PyTorch model's probabilities, loaded by the card's own PyTorch loader."""
    import torch

    code = filled(card_block((artifact / "README.md").read_text(), "Loading"), artifact, texts)
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
    served = run_card_block(artifact, "ONNX", texts,
                            result="{'predicted': predicted, 'probabilities': probabilities.tolist()}")
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
