"""The final refit (`refit`): with a test split, a fresh model trained on train + validation for the
best validation epoch's count is the one evaluated on test and shipped; the report keeps the first
pass's validation figures. The validation split teaches a keyword the training split never shows
("kiraz" means "b"; a text without a known keyword is "a" in training), so only a model that learnt
from validation gets the test's kiraz texts right."""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile

import pytest
import torch
from safetensors.torch import load_file

from conftest import SCRATCH, TINY_BERT, TINY_LLAMA, extract, jsonl, read_events, write_run_dir
from makam_worker.convert import event_to_proto
from makam_worker.training.child import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, execute
from makam_worker.training.first_pass import texts_digest

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

RUNS = {
    "encoder": ({"family": "encoder", "name": "", "config": dict(TINY_BERT), "tokenizer": {"vocab_size": 200}},
                {"epochs": 15, "batch_size": 8, "learning_rate": 3e-3}),
    "scratch": (dict(SCRATCH),
                {"epochs": 15, "batch_size": 8, "learning_rate": 3e-3, "layers": 1, "heads": 2, "d_model": 32,
                 "ff_dim": 64, "vocab_size": 100, "max_length": 32}),
    "decoder": ({"family": "decoder", "name": "", "config": dict(TINY_LLAMA), "tokenizer": {"vocab_size": 200}},
                {"epochs": 3, "batch_size": 8, "learning_rate": 5e-3, "lora_r": 4}),
    "tfidf": ({"family": "tfidf", "name": "", "config": None, "tokenizer": None}, {}),
}


def run(root, family: str, name: str, *, test: bool = True, **extra) -> tuple:
    model, hp = RUNS[family]
    run_dir = write_run_dir(root, name, {**hp, "seed": 1, **extra}, model=dict(model), dataset=jsonl(TRAIN),
                            validation=jsonl(VALIDATION), test=jsonl(TEST) if test else None)
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


# The first model's validation probabilities, kept for ensembles (test_ensemble.py reads them).
KEPT = {"validation_probabilities": "validation_probabilities.npy",
        "validation_texts_sha256": texts_digest([r["text"] for r in VALIDATION])}


def test_refit_ships_a_model_trained_on_train_and_validation(pair):
    family, root, (_, first), (events, refit) = pair
    assert first["trained_on"] == "train" and first["refit"] is None
    assert refit["trained_on"] == "train+validation"
    best = refit["best_epoch"]
    assert refit["refit"] == {
        "trained_on": "train+validation", "rows": len(TRAIN) + len(VALIDATION), "train_rows": len(TRAIN),
        "validation_rows": len(VALIDATION), "epochs": best, "train_loss": refit["refit"]["train_loss"],
        "train_texts_truncated": 0, **KEPT}
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
                                "train_rows": len(TRAIN), "validation_rows": len(VALIDATION), "epochs": 1, **KEPT}
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


def refit_run_dir(root, name: str, family: str = "scratch", **extra):
    model, hp = RUNS[family]
    return write_run_dir(root, name, {**hp, "seed": 1, "refit": True, **extra}, model=dict(model),
                         dataset=jsonl(TRAIN), validation=jsonl(VALIDATION), test=jsonl(TEST))


def of_type(run_dir, kind: str) -> list[dict]:
    return [e for e in read_events(run_dir) if e["type"] == kind]


@pytest.fixture(scope="module")
def killed_in_refit(tmp_path_factory):
    """An uninterrupted refit run, the same run stopped after the refit's first checkpoint, and that one
    resumed from its checkpoint in a new run dir (as a retry after a worker died would be)."""
    root = tmp_path_factory.mktemp("refit-resume")
    hp = {"epochs": 6}
    whole = refit_run_dir(root, "whole", **hp)
    assert execute(whole) == EXIT_OK, (whole / "train.log").read_text()
    first_epochs = len(of_type(whole, "metrics"))
    stopped = refit_run_dir(root, "stopped", **hp)
    stop = lambda: (stopped / "events.jsonl").exists() and len(of_type(stopped, "checkpoint")) > first_epochs  # noqa: E731
    assert execute(stopped, should_stop=stop) == EXIT_CANCELLED
    resumed = refit_run_dir(root, "resumed", **hp)
    shutil.copyfile(stopped / "checkpoint.tar", resumed / "resume.tar")
    spec = json.loads((resumed / "spec.json").read_text())
    spec["resume_checkpoint_sha256"] = hashlib.sha256((stopped / "checkpoint.tar").read_bytes()).hexdigest()
    (resumed / "spec.json").write_text(json.dumps(spec))
    assert execute(resumed) == EXIT_OK, (resumed / "train.log").read_text()
    return first_epochs, whole, stopped, resumed


def test_the_refit_reports_progress_and_checkpoints_numbered_on_from_the_first_pass(killed_in_refit):
    first_epochs, whole, _, _ = killed_in_refit
    summary = read_events(whole)[-1]["final_metrics"]
    best = summary["best_epoch"]
    assert best >= 2, "the test needs a refit of two epochs or more"
    first_steps = of_type(whole, "metrics")[-1]["step"]
    after = [e for e in read_events(whole) if e["seq"] > of_type(whole, "metrics")[-1]["seq"]]
    progress = [e for e in after if e["type"] == "progress"]
    refit_steps = progress[-1]["total_steps"] - first_steps
    assert refit_steps > 0 and refit_steps % best == 0
    assert {p["epoch"] for p in progress} == set(range(first_epochs + 1, first_epochs + best + 1))
    # Progress.phase marks the refit's; the first pass's have none.
    assert all(p.get("phase") == "refit" for p in progress)
    assert not any("phase" in p for p in of_type(whole, "progress") if p["seq"] < progress[0]["seq"])
    assert event_to_proto(progress[-1]).progress.phase == "refit"
    assert progress[0]["step"] == first_steps + 1 and progress[-1]["step"] == progress[-1]["total_steps"]
    assert [c["epoch"] for c in of_type(whole, "checkpoint")] == list(range(1, first_epochs + best + 1))
    with tarfile.open(whole / "checkpoint.tar") as tar:
        meta = json.loads(tar.extractfile("meta.json").read())
    assert (meta["phase"], meta["epoch"], meta["step"]) == ("refit", first_epochs + best, progress[-1]["total_steps"])


def test_a_run_stopped_in_the_refit_resumes_the_refit_and_ends_as_an_uninterrupted_one(killed_in_refit):
    first_epochs, whole, stopped, resumed = killed_in_refit
    with tarfile.open(stopped / "checkpoint.tar") as tar:
        meta = json.loads(tar.extractfile("meta.json").read())
    assert (meta["phase"], meta["epoch"]) == ("refit", first_epochs + 1)
    events = read_events(resumed)
    assert events[0]["type"] == "started" and events[0]["resumed_from_epoch"] == first_epochs + 1
    # The first pass is not trained again: no validation epochs, and progress only past the refit's first epoch.
    assert not of_type(resumed, "metrics")
    assert of_type(resumed, "progress") and all(p["epoch"] > first_epochs + 1 for p in of_type(resumed, "progress"))
    assert any("refit: resumed from its checkpoint after refit epoch 1" in e["message"] for e in of_type(resumed, "log"))

    def without_timing(run_dir) -> dict:
        metrics = json.loads((run_dir / "model" / "metrics.json").read_text())
        return {k: v for k, v in metrics.items() if k not in {"throughput", "summary"}}, {
            k: v for k, v in metrics["summary"].items() if k != "throughput"}

    assert without_timing(resumed) == without_timing(whole)
    a, b = load_file(whole / "model" / "model.safetensors"), load_file(resumed / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # The first model's validation probabilities (for ensembles) came through the refit checkpoint.
    kept = "validation_probabilities.npy"
    assert (resumed / "model" / kept).read_bytes() == (whole / "model" / kept).read_bytes()


def test_a_refit_checkpoint_does_not_resume_a_run_without_refit(killed_in_refit, tmp_path):
    _, _, stopped, _ = killed_in_refit
    run_dir = refit_run_dir(tmp_path, "no-refit", epochs=6, refit=False)
    shutil.copyfile(stopped / "checkpoint.tar", run_dir / "resume.tar")
    spec = json.loads((run_dir / "spec.json").read_text())
    spec["resume_checkpoint_sha256"] = hashlib.sha256((stopped / "checkpoint.tar").read_bytes()).hexdigest()
    (run_dir / "spec.json").write_text(json.dumps(spec))
    assert execute(run_dir) == EXIT_FAILED
    finished = read_events(run_dir)[-1]
    assert finished["error_code"] == "invalid_checkpoint" and "does no refit" in finished["error_message"]
