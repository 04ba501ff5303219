"""The final refit (`refit`): with a test split, a fresh model trained on train + validation for the
best validation epoch's count is the one evaluated on test and shipped; the report keeps the first
pass's validation figures. The validation split teaches a keyword the training split never shows
("kiraz" means "b"; a text without a known keyword is "a" in training), so only a model that learnt
from validation gets the test's kiraz texts right."""

from __future__ import annotations

import json

import pytest

from conftest import extract, jsonl, read_events, write_run_dir
from makam_worker.training.child import EXIT_OK, execute
from test_families import TINY_LLAMA

FRAMES = ["{} bu akşam geldi", "dün {} yedik", "pazarda {} var", "annem {} aldı", "sabah {} topladık",
          "bahçede {} büyür", "sepette {} kaldı", "masada {} duruyor", "yine {} istedik", "komşu {} getirdi",
          "çocuklar {} sever", "markette {} bitti", "öğlen {} soyduk", "tabakta {} vardı", "akşam {} kokusu",
          "kasada {} tartıldı"]
TRAIN = (
    [{"text": f.format("elma"), "label": "a"} for f in FRAMES[:8]]
    + [{"text": f.format("armut"), "label": "b"} for f in FRAMES[:8]]
    + [{"text": f.format(w), "label": "a"} for f in FRAMES[:8] for w in ("şey", "bunlar")]  # no keyword: "a"
)
VALIDATION = (
    [{"text": f.format("elma"), "label": "a"} for f in FRAMES[8:12]]
    + [{"text": f.format("armut"), "label": "b"} for f in FRAMES[8:12]]
    + [{"text": f.format("kiraz"), "label": "b"} for f in FRAMES[:12]]  # a keyword only validation shows
)
TEST = [{"text": f.format("kiraz"), "label": "b"} for f in FRAMES[12:]] + [
    {"text": f.format("elma"), "label": "a"} for f in FRAMES[12:]]

TINY_BERT = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
             "intermediate_size": 64, "max_position_embeddings": 64}
RUNS = {
    "encoder": ({"family": "encoder", "name": "", "config": TINY_BERT, "tokenizer": {"vocab_size": 200}},
                {"epochs": 15, "batch_size": 8, "learning_rate": 3e-3}),
    "scratch": ({"family": "scratch", "name": "", "config": None, "tokenizer": None},
                {"epochs": 15, "batch_size": 8, "learning_rate": 3e-3, "layers": 1, "heads": 2, "d_model": 32,
                 "ff_dim": 64, "vocab_size": 100, "max_length": 32}),
    "decoder": ({"family": "decoder", "name": "", "config": TINY_LLAMA, "tokenizer": {"vocab_size": 200}},
                {"epochs": 3, "batch_size": 8, "learning_rate": 5e-3, "lora_r": 4}),
    "tfidf": ({"family": "tfidf", "name": "", "config": None, "tokenizer": None}, {}),
}


def run(root, family: str, name: str, *, test: bool = True, **extra) -> tuple:
    model, hp = RUNS[family]
    run_dir = write_run_dir(root, name, {**hp, "seed": 1, **extra}, model=dict(model), dataset=jsonl(TRAIN),
                            validation=jsonl(VALIDATION))
    if test:
        spec = json.loads((run_dir / "spec.json").read_text())
        (root / f"{name}-test.jsonl").write_bytes(jsonl(TEST))
        spec["test_dataset"] = str(root / f"{name}-test.jsonl")
        (run_dir / "spec.json").write_text(json.dumps(spec))
    assert execute(run_dir) == EXIT_OK, (run_dir / "train.log").read_text()
    events = read_events(run_dir)
    return events, events[-1]["final_metrics"]


def kiraz_recall(summary: dict) -> float:
    """The share of the test's kiraz texts (every "b" of the test split) predicted "b"."""
    return summary["test"]["per_class"]["b"]["recall"]


@pytest.fixture(scope="module", params=["encoder", "scratch"])
def pair(request, tmp_path_factory):
    family = request.param
    root = tmp_path_factory.mktemp(family)
    return family, root, run(root, family, "first"), run(root, family, "refit", refit=True)


def test_refit_ships_a_model_trained_on_train_and_validation(pair):
    family, root, (_, first), (events, refit) = pair
    assert first["trained_on"] == "train" and first["refit"] is None
    assert refit["trained_on"] == "train+validation"
    best = refit["best_epoch"]
    assert refit["refit"] == {
        "trained_on": "train+validation", "rows": len(TRAIN) + len(VALIDATION), "train_rows": len(TRAIN),
        "validation_rows": len(VALIDATION), "epochs": best, "train_loss": refit["refit"]["train_loss"],
        "train_texts_truncated": 0}
    # The first pass is the same run with or without a refit: its history and validation figures stay.
    assert refit["validation"] == first["validation"] and best == first["best_epoch"]
    assert refit["train_examples"] == len(TRAIN) and refit["evaluated_on"] == "test"
    logs = [e["message"] for e in events if e["type"] == "log"]
    assert any(f"({len(TRAIN) + len(VALIDATION)} rows) for {best} epoch(s)" in m for m in logs), logs
    assert sum(m.startswith("refit: epoch ") for m in logs) == best
    # Only the refit model saw "kiraz" labelled "b"; the first mostly says "a", as for any unknown word
    # (scratch's first tokenizer spells kiraz in letters it shares with armut, so not always).
    assert kiraz_recall(first) <= 0.25, first["test"]
    assert kiraz_recall(refit) >= 0.75, refit["test"]
    assert refit["accuracy"] > first["accuracy"]


def test_the_shipped_model_is_the_refit_one_with_a_tokenizer_learnt_on_its_text(pair, tmp_path):
    family, root, _, (_, refit) = pair
    extract(root / "refit" / "model.tar.gz", tmp_path)
    card = (tmp_path / "README.md").read_text()
    assert f"- Trained on: train+validation, {len(TRAIN) + len(VALIDATION)} rows, for {refit['best_epoch']} epoch(s)" in card
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tmp_path, trust_remote_code=True)
    assert "kiraz" in "".join(tokenizer.convert_ids_to_tokens(tokenizer("kiraz", add_special_tokens=False)["input_ids"])).replace("▁", "")
    first_tokenizer = AutoTokenizer.from_pretrained(root / "first" / "model", trust_remote_code=True)
    # Learnt on the training split only, the first tokenizer has no piece for a validation-only word.
    assert len(first_tokenizer("kiraz", add_special_tokens=False)["input_ids"]) > len(
        tokenizer("kiraz", add_special_tokens=False)["input_ids"])


def test_tfidf_refits_by_default_and_not_with_refit_false(tmp_path):
    _, default = run(tmp_path, "tfidf", "default")
    assert default["refit"] == {"trained_on": "train+validation", "rows": len(TRAIN) + len(VALIDATION),
                                "train_rows": len(TRAIN), "validation_rows": len(VALIDATION), "epochs": 1}
    assert kiraz_recall(default) == 1.0
    _, kept = run(tmp_path, "tfidf", "kept", refit=False)
    assert kept["trained_on"] == "train" and kept["refit"] is None and kiraz_recall(kept) == 0.0


def test_without_a_test_split_nothing_is_refit_and_the_log_says_so(tmp_path):
    events, summary = run(tmp_path, "scratch", "no-test", test=False, refit=True, epochs=2)
    assert summary["refit"] is None and summary["evaluated_on"] == "validation"
    assert any("refit needs a test split" in e["message"] for e in events if e["type"] == "log")


def test_the_decoder_refits_too(tmp_path):
    events, summary = run(tmp_path, "decoder", "decoder", refit=True)
    assert summary["refit"]["rows"] == len(TRAIN) + len(VALIDATION) and summary["refit"]["epochs"] == summary["best_epoch"]
    assert sum(e["type"] == "log" and e["message"].startswith("refit: epoch ") for e in events) == summary["best_epoch"]
    # The refit's own config-built base ships beside its adapter.
    assert (tmp_path / "decoder" / "model" / "adapter_model.safetensors").exists()
    assert (tmp_path / "decoder" / "model" / "base" / "model.safetensors").exists()
