"""The masked-LM phase (mlm_epochs, training/mlm.py): real tiny models, real runs through `execute`.
It lowers the MLM loss on a config-built BERT and on scratch, reports it per epoch through `metrics`
events (phase "mlm") and its progress through `progress` events (phase "mlm"), checkpoints at the
run's cadence, hands its encoder to fine-tuning, reads the training and unlabeled texts but never
validation or test ones, runs from a local model directory with that model's own MLM head, and a run
stopped mid-phase resumes in it as if never stopped."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import EXAMPLES, LABELS, SCRATCH, extract, jsonl, model_spec, read_events, write_run_dir
from makam_worker.run_spec import ModelSpec
from makam_worker.training import mlm
from makam_worker.training.child import EXIT_CANCELLED, EXIT_OK, execute
from makam_worker.training.config import Hyperparameters
from makam_worker.training.data import load_splits
from makam_worker.training.family import BuildContext
from makam_worker.training.train_state import LoopState

UNLABELED = [{"text": f"{w} sabah erkenden yola çıktık, {w} akşam eve döndük"}
             for w in ("ağaçlar", "yollar", "denizler", "rüzgarlar", "şarkılar", "kuşlar", "dağlar", "evler")]
SMALL = {"epochs": 1, "batch_size": 8, "learning_rate": 3e-3, "validation_fraction": 0.25, "seed": 3,
         "mlm_learning_rate": 1e-2, "warmup_ratio": 0.0}
MLM_EPOCHS = 8
RUNS = {
    "encoder": (model_spec(), {**SMALL, "mlm_epochs": MLM_EPOCHS}),
    "scratch": (SCRATCH, {**SMALL, "mlm_epochs": MLM_EPOCHS, "layers": 1, "heads": 2, "d_model": 32, "ff_dim": 64,
                          "vocab_size": 150, "max_length": 32}),
}


def with_unlabeled(run_dir: Path, rows: list[dict]) -> Path:
    spec = json.loads((run_dir / "spec.json").read_text())
    path = run_dir.parent / f"{run_dir.name}-unlabeled.jsonl"
    path.write_bytes(jsonl(rows))
    spec["unlabeled_dataset"] = str(path)
    (run_dir / "spec.json").write_text(json.dumps(spec, ensure_ascii=False))
    return run_dir


def of_type(run_dir: Path, kind: str) -> list[dict]:
    return [e for e in read_events(run_dir) if e["type"] == kind]


@pytest.fixture(scope="module", params=list(RUNS))
def whole(request, tmp_path_factory):
    family = request.param
    model, hp = RUNS[family]
    root = tmp_path_factory.mktemp(f"mlm-{family}")
    run_dir = with_unlabeled(write_run_dir(root, "whole", hp, model=model), UNLABELED)
    assert execute(run_dir) == EXIT_OK, read_events(run_dir)[-1]
    return family, root, run_dir


def test_the_phase_lowers_the_mlm_loss_and_reports_it_per_epoch(whole):
    family, _, run_dir = whole
    rows = [e for e in of_type(run_dir, "metrics") if e.get("phase") == "mlm"]
    assert [r["epoch"] for r in rows] == list(range(1, MLM_EPOCHS + 1))
    assert rows[-1]["mlm_loss"] < 0.9 * rows[0]["mlm_loss"], rows
    # Then fine-tuning: its metrics rows as without the phase, after every MLM row.
    tuned = [e for e in of_type(run_dir, "metrics") if "phase" not in e]
    assert [r["epoch"] for r in tuned] == [1] and tuned[0]["seq"] > rows[-1]["seq"]
    # A checkpoint after each MLM epoch (epoch 0 of fine-tuning), then the fine-tune's.
    assert [c["epoch"] for c in of_type(run_dir, "checkpoint")] == [0] * MLM_EPOCHS + [1]


def test_a_batch_with_no_masked_token_adds_no_nan(tmp_path):
    # At 2% of ~10 tokens a text and 2 texts a batch, about two batches in three mask nothing.
    model, hp = RUNS["scratch"]
    run_dir = write_run_dir(tmp_path, "sparse", {**hp, "mlm_epochs": 3, "mlm_probability": 0.02, "batch_size": 2},
                            model=model)
    assert execute(run_dir) == EXIT_OK, read_events(run_dir)[-1]
    losses = [e["mlm_loss"] for e in of_type(run_dir, "metrics") if e.get("phase") == "mlm"]
    assert len(losses) == 3 and all(0 < loss < 20 for loss in losses), losses  # NaN fails both comparisons


def test_the_report_and_model_card_mention_the_phase(whole):
    family, root, run_dir = whole
    extract(run_dir / "model.tar.gz", root / "model")
    card = (root / "model" / "README.md").read_text()
    assert f"masked-LM pretraining for {MLM_EPOCHS} epoch(s)" in card and f"{len(UNLABELED)} unlabeled texts" in card
    metrics = json.loads((root / "model" / "metrics.json").read_text())
    assert [r["epoch"] for r in metrics["model"]["mlm_history"]] == list(range(1, MLM_EPOCHS + 1))
    assert metrics["data"]["examples"]["unlabeled"] == len(UNLABELED)


def test_a_run_stopped_mid_phase_resumes_in_it(whole):
    family, root, run_dir = whole
    model, hp = RUNS[family]
    stopped = with_unlabeled(write_run_dir(root, "stopped", hp, model=model), UNLABELED)
    stop = lambda: len(of_type(stopped, "checkpoint")) >= 2 if (stopped / "events.jsonl").exists() else False  # noqa: E731
    assert execute(stopped, should_stop=stop) == EXIT_CANCELLED
    resumed = with_unlabeled(write_run_dir(root, "resumed", hp, model=model), UNLABELED)
    shutil.copyfile(stopped / "checkpoint.tar", resumed / "resume.tar")
    spec = json.loads((resumed / "spec.json").read_text())
    spec["resume_checkpoint_sha256"] = hashlib.sha256((stopped / "checkpoint.tar").read_bytes()).hexdigest()
    (resumed / "spec.json").write_text(json.dumps(spec, ensure_ascii=False))
    assert execute(resumed) == EXIT_OK, read_events(resumed)[-1]

    def mlm_rows(run: Path) -> list[tuple]:
        return [(e["epoch"], e["step"], e["mlm_loss"]) for e in of_type(run, "metrics") if e.get("phase") == "mlm"]

    done = len(mlm_rows(stopped))
    assert 2 <= done < MLM_EPOCHS
    assert [r[0] for r in mlm_rows(resumed)] == list(range(done + 1, MLM_EPOCHS + 1))
    # The same masks, batches and steps as the uninterrupted run: the same losses, the same model.
    assert mlm_rows(stopped) + mlm_rows(resumed) == pytest.approx(mlm_rows(run_dir))
    final = lambda run: of_type(run, "finished")[0]["final_metrics"]["accuracy"]  # noqa: E731
    assert final(resumed) == final(run_dir)


def build(family: str, tmp_path: Path, unlabeled: list[str], **extra):
    model, hp = RUNS[family]
    train = tmp_path / "train.jsonl"
    train.write_bytes(jsonl(EXAMPLES))
    path = tmp_path / "unlabeled.jsonl"
    path.write_bytes(jsonl([{"text": t} for t in unlabeled]))
    hp = Hyperparameters.from_dict({**hp, **extra}, family)
    splits = load_splits(train, None, hp.validation_fraction, hp.seed, unlabeled_path=path)
    ctx = BuildContext(hp=hp, splits=splits, device=torch.device("cpu"), precision="fp32", work_dir=tmp_path / "w",
                       log=__import__("logging").getLogger("test"))
    from makam_worker.training.trainer import _builder

    spec = ModelSpec.from_dict(model)
    return spec, hp, splits, _builder(family)(spec, ctx)


@pytest.mark.parametrize("family", list(RUNS))
def test_fine_tuning_starts_from_the_weights_the_phase_learnt(family, tmp_path, monkeypatch):
    spec, hp, splits, built = build(family, tmp_path, [u["text"] for u in UNLABELED], mlm_epochs=2)
    before = {n: p.detach().clone() for n, p in built.model.named_parameters()}
    learnt = {}
    carry_back = mlm.carry_back

    def spy(family_, mlm_model, model):  # what the MLM model's encoder holds when the phase ends
        learnt.update({n: p.detach().clone() for n, p in mlm_model.named_parameters()})
        carry_back(family_, mlm_model, model)

    monkeypatch.setattr(mlm, "carry_back", spy)
    mlm.pretrain(tmp_path, spec, hp, splits, built, None, lambda: None, __import__("logging").getLogger("test"),
                 device=torch.device("cpu"), precision="fp32", loop=LoopState())
    after = dict(built.model.named_parameters())
    embeddings = "embeddings.weight" if family == "scratch" else "bert.embeddings.word_embeddings.weight"
    assert not torch.equal(before[embeddings], after[embeddings])  # the phase changed the encoder...
    learnt_name = f"model.{embeddings}" if family == "scratch" else embeddings
    assert torch.equal(learnt[learnt_name], after[embeddings])  # ...and the classifier holds what it learnt
    head = "classifier.weight"
    assert torch.equal(before[head], after[head])  # the classification head is fine-tuning's to train
    changed = [n for n in before if n != head and not n.startswith("classifier") and not n.startswith("bert.pooler")
               and not torch.equal(before[n], after[n])]
    assert len(changed) > len(before) // 2


@pytest.mark.parametrize("family", list(RUNS))
def test_the_tokenizer_learns_the_unlabeled_text_and_evaluation_text_stays_out(family, tmp_path):
    word = "zümrütanka"  # only in the unlabeled texts
    hp = RUNS[family][1]
    (tmp_path / "probe.jsonl").write_bytes(jsonl(EXAMPLES))
    validation_text = load_splits(tmp_path / "probe.jsonl", None, hp["validation_fraction"], hp["seed"]).validation_texts[0]
    unlabeled = [f"{word} {word} uçar gider {i}" for i in range(30)] + [validation_text]
    _, _, splits, built = build(family, tmp_path, unlabeled, mlm_epochs=1)
    assert validation_text in splits.validation_texts and validation_text not in mlm.texts_for(splits)
    assert splits.report["removed_from_unlabeled"] == 1 and len(splits.unlabeled_texts) == 30
    pieces = built.tokenizer.tokenize(word)
    assert len(pieces) <= 2, pieces  # learnt as a word (or nearly), not spelt out letter by letter


REFIT_MLM_EPOCHS = 2


@pytest.fixture(scope="module")
def refit_run(tmp_path_factory):
    """A scratch run with refit: the fresh model on train + validation gets its own masked-LM phase."""
    model, hp = RUNS["scratch"]
    run_dir = with_unlabeled(write_run_dir(tmp_path_factory.mktemp("mlm-refit"), "refit",
                                           {**hp, "mlm_epochs": REFIT_MLM_EPOCHS, "refit": True, "test_fraction": 0.2},
                                           model=model), UNLABELED)
    with pytest.MonkeyPatch.context() as patch:
        phases: list[str] = []
        pretrain = mlm.pretrain
        patch.setattr(mlm, "pretrain", lambda *a, **k: (phases.append(k.get("phase", mlm.PHASE)), pretrain(*a, **k))[1])
        assert execute(run_dir) == EXIT_OK, read_events(run_dir)[-1]
    return run_dir, phases


def test_the_refit_pretrains_its_fresh_model_too(refit_run):
    """refit trains a fresh model on train + validation: it gets its own phase, on those texts and the unlabeled."""
    run_dir, phases = refit_run
    assert phases == ["mlm", "refit_mlm"]  # the first pass's, then the refit's
    assert read_events(run_dir)[-1]["final_metrics"]["trained_on"] == "train+validation"


def test_the_refits_phase_reports_progress_as_the_first_passs_does(refit_run):
    """A user watching the job sees the refit's MLM phase move: progress events of phase "refit_mlm"
    counting its own epochs and steps, and a log line per epoch (as the refit's fine-tuning does), between
    the first pass and the refit's fine-tuning; the job's series keeps only the first pass's MLM epochs."""
    run_dir, _ = refit_run
    events = read_events(run_dir)
    progress = [e for e in events if e["type"] == "progress"]
    first = [e for e in progress if e.get("phase") == "mlm"]
    phase = [e for e in progress if e.get("phase") == "refit_mlm"]
    refit = [e for e in progress if e.get("phase") == "refit"]
    assert first and phase and refit
    assert first[-1]["seq"] < phase[0]["seq"] and phase[-1]["seq"] < refit[0]["seq"]
    assert phase[0]["epoch"] == 1 and phase[0]["step"] == 1
    total = phase[0]["total_steps"]
    steps_per_epoch = total // REFIT_MLM_EPOCHS
    # train + validation is more than the first pass's train split: more steps than its phase took.
    assert {e["total_steps"] for e in phase} == {total} and total >= first[0]["total_steps"]
    assert [(e["epoch"], e["step"]) for e in phase if e["step"] % steps_per_epoch == 0] == [
        (epoch, epoch * steps_per_epoch) for epoch in range(1, REFIT_MLM_EPOCHS + 1)]
    assert all(e["train_loss"] > 0 for e in phase)
    lines = [e for e in events if e["type"] == "log" and e["message"].startswith("refit: masked-LM epoch")]
    assert [e["message"].split(",")[0] for e in lines] == [f"refit: masked-LM epoch {epoch}/{REFIT_MLM_EPOCHS}"
                                                           for epoch in range(1, REFIT_MLM_EPOCHS + 1)]
    assert all(phase[0]["seq"] < e["seq"] < refit[0]["seq"] for e in lines)
    series = [e for e in events if e["type"] == "metrics" and e.get("phase") == "mlm"]
    assert [e["epoch"] for e in series] == list(range(1, REFIT_MLM_EPOCHS + 1))


# --- progress and checkpoint cadence in the phase ------------------------------------------------

CADENCE = {**SMALL, "mlm_epochs": 3, "checkpoint_every_epochs": 2}


@pytest.fixture(scope="module")
def cadence(tmp_path_factory):
    """An encoder run with three MLM epochs and a checkpoint every second epoch."""
    model, _ = RUNS["encoder"]
    run_dir = with_unlabeled(write_run_dir(tmp_path_factory.mktemp("mlm-cadence"), "cadence", CADENCE, model=model),
                             UNLABELED)
    assert execute(run_dir) == EXIT_OK, read_events(run_dir)[-1]
    return run_dir


def test_the_phase_sends_progress_events_as_fine_tuning_does(cadence):
    events = read_events(cadence)
    progress = [e for e in events if e["type"] == "progress"]
    phase = [e for e in progress if e.get("phase") == "mlm"]
    tuned = [e for e in progress if "phase" not in e]
    assert phase and tuned
    mlm_rows = [e for e in events if e["type"] == "metrics" and e.get("phase") == "mlm"]
    steps_per_epoch = mlm_rows[0]["step"]
    total = CADENCE["mlm_epochs"] * steps_per_epoch
    # The phase's own count of steps, its first step and the last step of each epoch at least (the cadence).
    assert {e["total_steps"] for e in phase} == {total}
    assert phase[0]["step"] == 1 and phase[0]["epoch"] == 1
    assert [(e["epoch"], e["step"]) for e in phase if e["step"] % steps_per_epoch == 0] == [
        (epoch, epoch * steps_per_epoch) for epoch in range(1, CADENCE["mlm_epochs"] + 1)]
    assert all(e["train_loss"] > 0 for e in phase)
    # The phase's own schedule: mlm_learning_rate (1e-2) decaying, above the fine-tune's learning_rate (3e-3).
    assert SMALL["learning_rate"] < phase[0]["learning_rate"] <= SMALL["mlm_learning_rate"]
    # Each epoch's progress comes before its metrics row, and the whole phase before fine-tuning's.
    for row in mlm_rows:
        last = [e for e in phase if e["epoch"] == row["epoch"]][-1]
        assert last["seq"] < row["seq"] and last["step"] == row["step"]
    assert phase[-1]["seq"] < tuned[0]["seq"] and tuned[0]["step"] == 1
    assert {e["total_steps"] for e in tuned} == {of_type(cadence, "started")[0]["total_steps"]}


def test_the_phase_checkpoints_at_the_runs_cadence(cadence):
    """checkpoint_every_epochs 2 over 3 MLM epochs: after MLM epochs 2 and 3 (the phase's last), not 1."""
    order = [("mlm", e["epoch"]) if e["type"] == "metrics" and e.get("phase") == "mlm" else
             ("tune", e["epoch"]) if e["type"] == "metrics" else ("checkpoint", e["epoch"])
             for e in read_events(cadence) if e["type"] in ("metrics", "checkpoint")]
    # A checkpoint is announced once whole: the one of MLM epoch 2 before epoch 3's row, the last before fine-tuning.
    assert order == [("mlm", 1), ("mlm", 2), ("checkpoint", 0), ("mlm", 3), ("checkpoint", 0), ("tune", 1),
                     ("checkpoint", 1)]


# --- from a named model: a local directory ---------------------------------------------------------


@pytest.fixture(scope="module")
def saved_bert(tmp_path_factory) -> Path:
    """A tiny BERT with its MLM head and tokenizer, save_pretrained into a model root, as a user's local model."""
    from transformers import BertConfig, BertForMaskedLM

    from conftest import TINY_BERT

    from makam_worker.training.families.encoder import train_wordpiece

    root = tmp_path_factory.mktemp("model-root")
    tokenizer = train_wordpiece([e["text"] for e in EXAMPLES] + [u["text"] for u in UNLABELED],
                                {"vocab_size": 300, "min_frequency": 0})
    torch.manual_seed(11)
    fields = {k: v for k, v in TINY_BERT.items() if k != "model_type"}
    BertForMaskedLM(BertConfig(**fields, vocab_size=len(tokenizer))).save_pretrained(root / "tiny-bert")
    tokenizer.save_pretrained(root / "tiny-bert")
    return root / "tiny-bert"


def test_the_phase_starts_from_a_named_models_own_mlm_head(saved_bert, tmp_path, monkeypatch):
    from transformers import BertForMaskedLM

    monkeypatch.setenv("MAKAM_MODEL_ROOTS", str(saved_bert.parent))
    saved = BertForMaskedLM.from_pretrained(saved_bert).state_dict()
    spec = ModelSpec.from_dict({"family": "encoder", "name": str(saved_bert), "config": None, "tokenizer": None})
    from makam_worker.training.trainer import _builder

    hp = Hyperparameters.from_dict({**RUNS["encoder"][1], "mlm_epochs": 1}, "encoder")
    splits = load_splits(_written(tmp_path), None, hp.validation_fraction, hp.seed)
    ctx = BuildContext(hp=hp, splits=splits, device=torch.device("cpu"), precision="fp32", work_dir=tmp_path / "w",
                       log=__import__("logging").getLogger("test"))
    built = _builder("encoder")(spec, ctx)
    masked = mlm.masked_lm("encoder", spec, built.model)
    head = [k for k in saved if k.startswith("cls.predictions.transform")]
    assert head and all(torch.equal(masked.state_dict()[k], saved[k]) for k in head)  # pretrained, not drawn anew
    encoder = built.model.base_model.state_dict()
    assert all(torch.equal(v, encoder[k]) for k, v in masked.base_model.state_dict().items())


def _written(tmp_path: Path) -> Path:
    train = tmp_path / "train.jsonl"
    train.write_bytes(jsonl(EXAMPLES))
    return train


def test_mlm_then_fine_tuning_from_a_local_model_directory(saved_bert, tmp_path, monkeypatch):
    """model.name a local directory (not config-built): its tokenizer and MLM head pretrain it, then it is fine-tuned."""
    from safetensors.torch import load_file
    from transformers import BertForMaskedLM

    monkeypatch.setenv("MAKAM_MODEL_ROOTS", str(saved_bert.parent))
    spec = {"family": "encoder", "name": str(saved_bert), "config": None, "tokenizer": None}
    hp = {**SMALL, "epochs": 2, "mlm_epochs": 4}
    run_dir = with_unlabeled(write_run_dir(tmp_path, "named", hp, model=spec), UNLABELED)
    assert execute(run_dir) == EXIT_OK, read_events(run_dir)[-1]
    rows = [e for e in of_type(run_dir, "metrics") if e.get("phase") == "mlm"]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4] and rows[-1]["mlm_loss"] < rows[0]["mlm_loss"], rows
    assert [e["epoch"] for e in of_type(run_dir, "metrics") if "phase" not in e] == [1, 2]
    assert any(e.get("phase") == "mlm" for e in of_type(run_dir, "progress"))
    extract(run_dir / "model.tar.gz", tmp_path / "model")
    card = (tmp_path / "model" / "README.md").read_text()
    assert str(saved_bert) in card and "masked-LM pretraining for 4 epoch(s)" in card
    # The shipped classifier is the saved model's vocabulary and encoder, trained further by both phases.
    shipped = load_file(tmp_path / "model" / "model.safetensors")
    original = BertForMaskedLM.from_pretrained(saved_bert).state_dict()
    name = "bert.embeddings.word_embeddings.weight"
    assert shipped[name].shape == original[name].shape and not torch.equal(shipped[name], original[name])
    assert json.loads((tmp_path / "model" / "config.json").read_text())["id2label"] == {str(i): label for i, label in enumerate(LABELS)}


def test_the_phase_checkpoints_by_the_minute_too(tmp_path):
    """checkpoint_every_epochs past the run: checkpoint_every_minutes decides, and the phase's last epoch has one."""
    model, _ = RUNS["encoder"]
    for name, minutes, expected in (("fast", 1e-6, [0, 0, 1]), ("slow", 600, [0, 1])):
        hp = {**SMALL, "mlm_epochs": 2, "checkpoint_every_epochs": 1000, "checkpoint_every_minutes": minutes}
        run_dir = write_run_dir(tmp_path, name, hp, model=model)
        assert execute(run_dir) == EXIT_OK, read_events(run_dir)[-1]
        assert [c["epoch"] for c in of_type(run_dir, "checkpoint")] == expected, name


# --- the MLM head at the masked positions only --------------------------------------------------

VOCAB = 97


def masked_batch(seed: int = 5) -> dict[str, torch.Tensor]:
    """Three rows of 12 tokens, the last with 4 padding positions; ~25% of the real tokens masked."""
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, VOCAB, (3, 12), generator=g)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[2, 8:] = 0
    input_ids[2, 8:] = 0
    chosen = (torch.rand(input_ids.shape, generator=g) < 0.25) & attention_mask.bool()
    chosen[0, 3] = chosen[1, 0] = True
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def loss_and_gradients(model: torch.nn.Module, loss_of) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss = loss_of()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def full_vocabulary_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The loss as computed before: every position scored on the vocabulary, -100 ignored."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert logits.shape[:2] == batch["labels"].shape  # without labels, every position's logits
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch["labels"].view(-1), ignore_index=-100)


def assert_same_as_full_vocabulary(model: torch.nn.Module) -> None:
    batch = masked_batch()
    model.eval()  # no dropout: the two passes must see the same network
    loss, grads = loss_and_gradients(model, lambda: model(**batch).loss)
    full_loss, full_grads = loss_and_gradients(model, lambda: full_vocabulary_loss(model, batch))
    masked = int((batch["labels"] != -100).sum())
    assert model(**batch).logits.shape[-2:] == (masked, VOCAB)  # only the masked positions were scored
    assert torch.allclose(loss, full_loss, rtol=1e-5, atol=1e-6), (loss, full_loss)
    assert grads.keys() == full_grads.keys() and len(grads) > 4
    for name, grad in grads.items():
        assert torch.allclose(grad, full_grads[name], rtol=1e-4, atol=1e-7), name


def test_the_scratch_head_at_masked_positions_gives_the_full_vocabulary_loss_and_gradients():
    from makam_worker.training.modeling_makam_scratch import MakamScratchConfig, MakamScratchForSequenceClassification

    torch.manual_seed(0)
    config = MakamScratchConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=16, num_labels=3)
    assert_same_as_full_vocabulary(mlm.ScratchForMaskedLM(MakamScratchForSequenceClassification(config)))


TINY = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
        "max_position_embeddings": 32, "vocab_size": VOCAB}
MASKED_LM_CONFIGS = {
    "bert": TINY,
    "roberta": {**TINY, "pad_token_id": 1},
    "distilbert": {"dim": 16, "n_layers": 1, "n_heads": 2, "hidden_dim": 32, "max_position_embeddings": 32,
                   "vocab_size": VOCAB},
    "electra": {**TINY, "embedding_size": 8},
    "albert": {**TINY, "embedding_size": 8},
    "deberta-v2": {**TINY, "relative_attention": True, "position_buckets": 8, "pos_att_type": ["p2c", "c2p"]},
    "modernbert": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
                   "max_position_embeddings": 32, "vocab_size": VOCAB, "pad_token_id": 0},
}


@pytest.mark.parametrize("model_type", list(MASKED_LM_CONFIGS))
def test_an_encoders_head_at_masked_positions_gives_the_full_vocabulary_loss_and_gradients(model_type):
    """The encoder family's *ForMaskedLM models (hooks, mlm.head_at_masked_positions), over the
    architectures it is written for: their own MLM heads, tied or not, at the masked positions only."""
    from transformers import AutoConfig, AutoModelForMaskedLM

    torch.manual_seed(0)
    model = AutoModelForMaskedLM.from_config(AutoConfig.for_model(model_type, **MASKED_LM_CONFIGS[model_type]))
    assert_same_as_full_vocabulary(mlm.head_at_masked_positions(model))


def test_the_encoder_familys_mlm_model_scores_the_masked_positions_only(tmp_path):
    """masked_lm hands pretrain the hooked model."""
    spec, hp, splits, built = build("encoder", tmp_path, [u["text"] for u in UNLABELED], mlm_epochs=1)
    model = mlm.masked_lm("encoder", spec, built.model)
    batch = {**masked_batch(), "input_ids": masked_batch()["input_ids"] % len(built.tokenizer)}
    batch["labels"] = torch.where(batch["labels"] != -100, batch["input_ids"], batch["labels"])
    assert model(**batch).logits.shape[:2] == (1, int((batch["labels"] != -100).sum()))
