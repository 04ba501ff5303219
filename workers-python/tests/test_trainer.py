"""The training loop's parts: accumulation, truncation, schedules, weight decay, precision, best
checkpoint and early stopping."""

import copy
import json
import math

import pytest
import torch

from conftest import EXAMPLES, LABELS, LEARNS, SCRATCH, read_events, write_run_dir
from makam_worker.training import trainer
from makam_worker.training.config import Hyperparameters
from makam_worker.training.data import Splits
from makam_worker.training.errors import TrainingError
from makam_worker.training.losses import ClassificationLoss
from makam_worker.training.modeling_makam_scratch import MakamScratchConfig, MakamScratchForSequenceClassification
from makam_worker.training.child import EXIT_FAILED, EXIT_OK, execute
from makam_worker.training.trainer import (
    TextEncoder, collate, loss_for, optimizer_for, resolve_precision, scheduler_for, train_step, truncate, windows,
)

TINY = {"layers": 2, "heads": 2, "d_model": 32, "ff_dim": 64, "vocab_size": 200}


def tiny_model(dropout: float = 0.0, seed: int = 0) -> MakamScratchForSequenceClassification:
    torch.manual_seed(seed)
    config = MakamScratchConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=32, hidden_dropout_prob=dropout, max_position_embeddings=32,
                                num_labels=3)
    return MakamScratchForSequenceClassification(config)


def batches(sizes: list[int], seed: int = 1) -> list[dict[str, torch.Tensor]]:
    """Micro-batches of texts of varied length, each padded to its own longest text."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(sum(sizes)):
        length = int(torch.randint(3, 20, (1,), generator=g))
        rows.append((i, torch.randint(4, 50, (length,), generator=g).tolist(), i % 3))
    out, start = [], 0
    for size in sizes:
        out.append(collate(rows[start : start + size], pad_token_id=0))
        start += size
    return out


@pytest.mark.parametrize("loss_kwargs", [
    {}, {"class_weights": torch.tensor([0.5, 3.0, 1.0])}, {"kind": "focal", "label_smoothing": 0.1},
])
def test_accumulating_k_micro_batches_equals_one_batch_k_times_larger(loss_kwargs):
    loss_fn = ClassificationLoss(3, **loss_kwargs)
    big, small = tiny_model(), tiny_model()
    small.load_state_dict(big.state_dict())
    # SGD: Adam's first step is lr * sign(grad), which turns float noise on zero gradients (the key
    # bias gets none: softmax ignores it) into full-size steps, hiding what is compared here.
    big_opt, small_opt = torch.optim.SGD(big.parameters(), lr=0.5), torch.optim.SGD(small.parameters(), lr=0.5)
    cpu = torch.device("cpu")
    whole = batches([12])  # one batch of 12, padded to its longest text
    micro = batches([3, 3, 3, 3])  # the same 12 texts as 4 micro-batches, each padded less
    assert torch.equal(whole[0]["labels"], torch.cat([b["labels"] for b in micro]))
    loss_big = train_step(big, whole, loss_fn, big_opt, device=cpu, max_grad_norm=1.0)
    loss_small = train_step(small, micro, loss_fn, small_opt, device=cpu, max_grad_norm=1.0)
    assert loss_small == pytest.approx(loss_big, rel=1e-5)
    for (name, p), q in zip(big.named_parameters(), small.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6, rtol=1e-4), name
        assert torch.allclose(p, q, atol=1e-6), name


def test_windows_group_micro_batches_per_optimizer_step():
    assert [len(w) for w in windows(range(10), 4)] == [4, 4, 2]


def test_truncation_keeps_the_head_the_tail_or_both():
    ids = list(range(20))
    assert truncate(ids, 10, "head") == list(range(10))
    assert truncate(ids, 10, "tail") == list(range(10, 20))
    assert truncate(ids, 10, "head+tail") == [0, 1, 2, *range(13, 20)]  # round(10 * 128/510) = 3 from the head
    kept = truncate(list(range(1000)), 510, "head+tail")
    assert kept[:128] == list(range(128)) and kept[128:] == list(range(618, 1000))  # Sun et al.: 128 + 382
    assert truncate(ids[:5], 10, "tail") == ids[:5]


@pytest.mark.parametrize("mode", ["head", "tail", "head+tail"])
def test_the_text_encoder_truncates_inside_the_special_tokens(mode):
    from makam_worker.training.families.encoder import train_wordpiece

    words = [f"w{i}" for i in range(30)]
    tokenizer = train_wordpiece([" ".join(words)], {"vocab_size": 200, "min_frequency": 0})
    ids, truncated = TextEncoder(tokenizer, 12, mode)([" ".join(words), "w1 w2"])
    tokens = tokenizer.convert_ids_to_tokens(ids[0])
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and len(tokens) == 12 and truncated == 1
    expected = {"head": words[:10], "tail": words[20:], "head+tail": words[:3] + words[23:]}[mode]
    assert tokens[1:-1] == expected
    assert tokenizer.convert_ids_to_tokens(ids[1]) == ["[CLS]", "w1", "w2", "[SEP]"]


def lrs(schedule: str, total: int = 20, **hp) -> list[float]:
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=1.0)
    scheduler = scheduler_for(optimizer, Hyperparameters.from_dict({"lr_scheduler": schedule, "learning_rate": 1.0, **hp}),
                              total)
    out = []
    for _ in range(total):
        out.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    return out


def test_linear_and_cosine_schedules_decay_as_named_after_warmup():
    linear, cosine, constant = lrs("linear"), lrs("cosine"), lrs("constant")
    assert linear[:3] == pytest.approx([0.0, 0.5, 1.0]) == cosine[:3]  # warmup_ratio 0.1 of 20 steps = 2 steps
    quarter = 2 + 18 // 4  # a quarter of the way through the decay
    assert linear[quarter] == pytest.approx(1 - (quarter - 2) / 18)
    assert cosine[quarter] == pytest.approx(0.5 * (1 + math.cos(math.pi * (quarter - 2) / 18)))
    assert cosine[quarter] > linear[quarter]
    assert constant[2:] == pytest.approx([1.0] * 18)
    assert lrs("linear", warmup_steps=5)[:6] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])


def test_weight_decay_skips_biases_and_norm_weights():
    model = tiny_model()
    optimizer = optimizer_for(model, Hyperparameters.from_dict({"weight_decay": 0.1}, "scratch"))
    decay, no_decay = optimizer.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 2 for p in decay["params"])
    assert {names[id(p)] for p in no_decay["params"]} >= {"norm.weight", "norm.bias", "blocks.0.norm1.weight",
                                                          "blocks.0.attn.qkv.bias", "classifier.bias"}


def test_precision_is_resolved_for_the_device():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(TrainingError) as info:
        resolve_precision("fp16", cpu)
    assert (info.value.code, info.value.retryable) == ("precision_unsupported", False)


def test_fp16_on_cpu_fails_the_run_as_precision_unsupported(tmp_path):
    run_dir = write_run_dir(tmp_path, "fp16", {**TINY, "precision": "fp16"}, model=SCRATCH)
    assert execute(run_dir) == EXIT_FAILED
    finished = read_events(run_dir)[-1]
    assert (finished["error_code"], finished["retryable"]) == ("precision_unsupported", False)
    assert "fp16" in finished["error_message"]


def test_bf16_on_cpu_trains_under_autocast(tmp_path):
    run_dir = write_run_dir(tmp_path, "bf16", {**TINY, "precision": "bf16", "epochs": 1}, model=SCRATCH)
    assert execute(run_dir) == EXIT_OK
    assert read_events(run_dir)[-1]["final_metrics"]["throughput"]["precision"] == "bf16"


def splits_of(train_labels: list[int]) -> Splits:
    return Splits(label_names=LABELS, train_texts=["x"] * len(train_labels), train_labels=train_labels,
                  validation_texts=["y"], validation_labels=[0])


def test_balanced_class_weights_come_from_the_training_split():
    loss_fn = loss_for(Hyperparameters.from_dict({"class_weights": "balanced"}), splits_of([0] * 6 + [1] * 3 + [2]))
    assert loss_fn.class_weights.tolist() == pytest.approx([10 / 18, 10 / 9, 10 / 3])
    named = loss_for(Hyperparameters.from_dict({"class_weights": {"doğa": 4}}), splits_of([0, 1, 2]))
    assert named.class_weights.tolist() == [1.0, 4.0, 1.0]
    with pytest.raises(TrainingError, match="'caz'") as info:
        loss_for(Hyperparameters.from_dict({"loss": "focal", "focal_alpha": {"caz": 2}}), splits_of([0, 1, 2]))
    assert info.value.code == "invalid_hyperparameters"


def test_a_run_with_balanced_class_weights_and_focal_loss_succeeds(tmp_path):
    rows = [e for e in EXAMPLES if e["label"] != "doğa"] + [e for e in EXAMPLES if e["label"] == "doğa"][:8]
    from conftest import jsonl

    hp = {**TINY, "epochs": 2, "class_weights": "balanced", "loss": "focal", "focal_alpha": {"doğa": 2.0}}
    run_dir = write_run_dir(tmp_path, "weighted", hp, model=SCRATCH, dataset=jsonl(rows))
    assert execute(run_dir) == EXIT_OK
    metrics = json.loads((run_dir / "model" / "metrics.json").read_text())
    assert metrics["hyperparameters"]["class_weights"] == "balanced"


def fingerprint(model: torch.nn.Module) -> float:
    return float(sum(p.detach().double().sum() for p in model.parameters() if p.requires_grad))


def test_the_best_epoch_is_evaluated_and_exported_and_early_stopping_stops(tmp_path, monkeypatch):
    """Validation losses 0.9, 0.5, 0.7, 0.8, ... by epoch: the best is epoch 2; patience 2 stops after
    epoch 4 of 10. The final evaluation and the artifact must have epoch 2's weights."""
    real = trainer.evaluate
    calls: list[float] = []
    forced = [0.9, 0.5, 0.7, 0.8, 0.9, 1.0]

    def evaluate(model, data, device, precision="fp32"):
        loss, predictions, references = real(model, data, device, precision)
        calls.append(fingerprint(model))
        n = len(calls)
        return (forced[n - 1] if n <= len(forced) else loss), predictions, references

    monkeypatch.setattr(trainer, "evaluate", evaluate)
    hp = {**TINY, "epochs": 10, "early_stopping_patience": 2, "metric_for_best_model": "validation_loss",
          "learning_rate": 3e-3, "batch_size": 8, "validation_fraction": 0.25, "seed": 3}
    run_dir = write_run_dir(tmp_path, "best", hp, model=SCRATCH)
    assert execute(run_dir) == EXIT_OK
    events = read_events(run_dir)
    assert [m["epoch"] for m in events if m["type"] == "metrics"] == [1, 2, 3, 4]
    assert any("early stopping after epoch 4" in e.get("message", "") for e in events)
    summary = events[-1]["final_metrics"]
    assert (summary["best_epoch"], summary["epochs_trained"], summary["stopped_early"]) == (2, 4, True)
    assert summary["validation"]["validation_loss"] == 0.5
    assert len(calls) == 5 and calls[4] == calls[1] != calls[3]  # the final evaluation saw epoch 2's weights

    from transformers import AutoModelForSequenceClassification

    exported = AutoModelForSequenceClassification.from_pretrained(run_dir / "model", trust_remote_code=True)
    assert fingerprint(exported) == pytest.approx(calls[1], rel=1e-9)


def test_early_stopping_stops_a_run_that_stops_improving(tmp_path):
    """A learning rate too small to change any prediction: macro F1 never improves after epoch 1."""
    hp = {**TINY, "epochs": 20, "early_stopping_patience": 2, "learning_rate": 1e-12, **{
        k: LEARNS[k] for k in ("batch_size", "validation_fraction", "seed")}}
    run_dir = write_run_dir(tmp_path, "flat", hp, model=SCRATCH)
    assert execute(run_dir) == EXIT_OK
    summary = read_events(run_dir)[-1]["final_metrics"]
    assert (summary["best_epoch"], summary["epochs_trained"], summary["stopped_early"]) == (1, 3, True)
    assert summary["accuracy"] == summary["validation"]["accuracy"]


def test_an_accumulated_run_takes_fewer_optimizer_steps(tmp_path):
    hp = {**TINY, "epochs": 1, "batch_size": 4, "gradient_accumulation_steps": 3, "validation_fraction": 0.25}
    run_dir = write_run_dir(tmp_path, "accum", hp, model=SCRATCH)
    assert execute(run_dir) == EXIT_OK
    started = read_events(run_dir)[0]
    assert started["total_steps"] == math.ceil(math.ceil(54 / 4) / 3)


def test_snapshot_and_restore_round_trip():
    model = tiny_model()
    saved = trainer.snapshot(model)
    before = copy.deepcopy(model.state_dict())
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    trainer.restore(model, saved)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
