"""The loop's batching and engine settings (issues 12 and 13): the epoch streams its windows, dynamic
padding (a multiple of 8 on CUDA, capped at max_length), length-grouped batches, evaluation that does
not depend on padding, no host reads per micro-batch, SDPA attention, fused AdamW and torch.compile."""

from __future__ import annotations

import weakref

import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

from conftest import SCRATCH, read_events, write_run_dir
from makam_worker.training import trainer
from makam_worker.training.child import EXIT_OK, execute
from makam_worker.training.config import Hyperparameters
from makam_worker.training.families.encoder import train_wordpiece
from makam_worker.training.families.hf_models import attention_notes, from_config
from makam_worker.training.losses import ClassificationLoss
from makam_worker.training.modeling_makam_scratch import MakamScratchConfig, MakamScratchForSequenceClassification

TINY = {"layers": 2, "heads": 2, "d_model": 32, "ff_dim": 64, "vocab_size": 200, "validation_fraction": 0.25, "seed": 3}
CPU = torch.device("cpu")


def rows(n: int, seed: int = 0, low: int = 3, high: int = 40, vocab: int = 50) -> list[tuple[int, list[int], int]]:
    """(index, ids, label) rows of random lengths; ids from 4 up, so the pad id 0 never occurs in a text."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        length = int(torch.randint(low, high + 1, (1,), generator=g))
        out.append((i, torch.randint(4, vocab, (length,), generator=g).tolist(), i % 3))
    return out


# --- 1. the epoch streams its batches ----------------------------------------------------------


class Batch(dict):
    """A collated batch that can be weakly referenced, to count the ones still alive."""

    __hash__ = object.__hash__  # by identity, for the WeakSet
    __eq__ = object.__eq__


def test_an_epoch_holds_one_window_of_batches_at_a_time(tmp_path, monkeypatch):
    live: weakref.WeakSet = weakref.WeakSet()
    most = [0]
    made = [0]
    real = trainer.collate

    def tracked(*args, **kwargs):
        most[0] = max(most[0], len(live))  # batches still referenced when the next one is made
        batch = Batch(real(*args, **kwargs))
        live.add(batch)
        made[0] += 1
        return batch

    monkeypatch.setattr(trainer, "collate", tracked)
    k = 2
    run_dir = write_run_dir(tmp_path, "stream", {**TINY, "epochs": 1, "batch_size": 2, "gradient_accumulation_steps": k},
                            model=SCRATCH)
    assert execute(run_dir) == EXIT_OK, read_events(run_dir)[-1]
    assert made[0] > 20  # 54 training texts: 27 micro-batches, plus the evaluation's
    # The window being filled and the one just trained (still bound to the loop variable), never the epoch.
    assert most[0] <= 2 * k


def test_steps_per_epoch_come_from_the_lengths_and_match_the_windows(tmp_path):
    ids = [r[1] for r in rows(23)]
    data = trainer.loader(ids, [0] * 23, 4, 0, shuffle=True, seed=1)
    assert len(data) == 6
    assert len(list(trainer.windows(data, 4))) == 2


# --- 2. dynamic padding and length-grouped batches --------------------------------------------


def test_a_batch_pads_to_its_longest_text_rounded_up_to_the_multiple_but_not_past_max_length():
    batch = [(0, [5] * 9, 0), (1, [6] * 3, 1)]
    assert trainer.collate(batch, 0)["input_ids"].shape == (2, 9)
    padded = trainer.collate(batch, 0, multiple_of=8, max_width=32)
    assert padded["input_ids"].shape == (2, 16)
    assert padded["attention_mask"].sum(dim=1).tolist() == [9, 3]
    assert (padded["input_ids"][0, 9:] == 0).all() and (padded["input_ids"][1, 3:] == 0).all()
    # max_length 12: rounding to 16 would index positions the model does not have.
    assert trainer.collate(batch, 0, multiple_of=8, max_width=12)["input_ids"].shape == (2, 12)


def padded_tokens(data) -> int:
    return sum(int(b["input_ids"].numel()) for b in data)


def test_length_grouped_batches_pad_less_and_stay_a_seeded_permutation_per_epoch():
    data = rows(400, seed=2, low=3, high=200)
    ids, labels = [r[1] for r in data], [r[2] for r in data]
    plain = trainer.loader(ids, labels, 16, 0, shuffle=True, seed=7)
    grouped = trainer.loader(ids, labels, 16, 0, shuffle=True, seed=7, group_by_length=True)
    real = sum(len(x) for x in ids)
    assert padded_tokens(grouped) - real < (padded_tokens(plain) - real) / 3

    sampler = grouped.sampler
    first = list(sampler)
    assert sorted(first) == list(range(400)) and first == list(sampler)  # depends on (seed, epoch) only
    sampler.set_epoch(2)
    assert list(sampler) != first
    # Batches are not simply sorted: the mega-batches are shuffled.
    widths = [b["input_ids"].shape[1] for b in grouped]
    assert widths != sorted(widths) and widths != sorted(widths, reverse=True)


def test_a_run_with_length_grouped_batches_trains_and_is_reproducible(tmp_path):
    hp = {**TINY, "epochs": 2, "batch_size": 4, "group_by_length": True}
    finals = []
    for name in ("a", "b"):
        run_dir = write_run_dir(tmp_path, name, hp, model=SCRATCH)
        assert execute(run_dir) == EXIT_OK, read_events(run_dir)[-1]
        finals.append(read_events(run_dir)[-1]["final_metrics"])
    assert finals[0]["validation"] == finals[1]["validation"]
    assert Hyperparameters.from_dict({}, "scratch").group_by_length is False


def tiny_models() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    common = {"num_labels": 3, "pad_token_id": 0}
    bert = AutoConfig.for_model("bert", vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64, max_position_embeddings=64, **common)
    llama = AutoConfig.for_model("llama", vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 num_key_value_heads=1, intermediate_size=64, max_position_embeddings=64, **common)
    scratch = MakamScratchConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=64, max_position_embeddings=64, **common)
    return {
        "encoder": AutoModelForSequenceClassification.from_config(bert, attn_implementation="sdpa"),
        "decoder": AutoModelForSequenceClassification.from_config(llama, attn_implementation="sdpa"),
        "scratch": MakamScratchForSequenceClassification(scratch),
    }


@torch.no_grad()
def logits_by_index(model: torch.nn.Module, data) -> torch.Tensor:
    out = {}
    for batch in data:
        logits = model(**trainer.model_inputs(batch, CPU)).logits
        for i, row in zip(batch["index"].tolist(), logits):
            out[i] = row
    return torch.stack([out[i] for i in sorted(out)])


@pytest.mark.parametrize("family", ["encoder", "decoder", "scratch"])
def test_evaluation_does_not_depend_on_padding(family):
    """Dynamic padding (each batch to its longest text, rounded to 8, or none at all) against every
    text padded to max_length: the same logits within float tolerance, so the same predictions."""
    model = tiny_models()[family].eval()
    data = rows(40, seed=4, low=2, high=60)
    ids, labels = [r[1] for r in data], [r[2] for r in data]
    dynamic = trainer.loader(ids, labels, 8, 0, shuffle=False)
    rounded = trainer.loader(ids, labels, 8, 0, shuffle=False, multiple_of=8, max_width=64)
    fixed = trainer.loader(ids, labels, 8, 0, shuffle=False, multiple_of=64, max_width=64)
    assert {b["input_ids"].shape[1] for b in fixed} == {64}
    assert len({b["input_ids"].shape[1] for b in dynamic}) > 3
    reference = logits_by_index(model, fixed)
    for other in (dynamic, rounded):
        assert torch.allclose(logits_by_index(model, other), reference, atol=1e-5, rtol=1e-4)
    loss_fixed, predicted_fixed, refs_fixed = trainer.evaluate(model, fixed, CPU)
    loss_dynamic, predicted_dynamic, refs_dynamic = trainer.evaluate(model, dynamic, CPU)
    assert loss_dynamic == pytest.approx(loss_fixed, rel=1e-5)
    assert predicted_dynamic == predicted_fixed and refs_dynamic == refs_fixed == labels


# --- 3. engine settings --------------------------------------------------------------------------


def test_a_training_step_reads_nothing_back_from_the_device(monkeypatch):
    torch.manual_seed(0)
    model = MakamScratchForSequenceClassification(MakamScratchConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=64, num_labels=3))
    # SGD: AdamW reads its step counters with .item(), host tensors by design (no device sync).
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    window = [trainer.collate(rows(4, seed=s), 0) for s in range(3)]
    reads = []
    real_item = torch.Tensor.item
    monkeypatch.setattr(torch.Tensor, "item", lambda self: reads.append(1) or real_item(self))
    loss = trainer.train_step(model, window, ClassificationLoss(3), optimizer, device=CPU, max_grad_norm=1.0)
    assert reads == [] and isinstance(loss, torch.Tensor) and loss.dtype == torch.float64

    # Progress sums the tensors and reads them once per event.
    class Events:
        def __init__(self):
            self.rows = []

        def append(self, kind, **fields):
            self.rows.append(fields)

    events = Events()
    reporter = trainer.ProgressReporter(events, total_steps=3, interval_s=1e9)
    for step, loss in enumerate((1.0, 2.0, 3.0), start=1):
        reporter.step(1, step, torch.tensor(loss, dtype=torch.float64), 0.1, epoch_end=step == 3)
    sent = [r["train_loss"] for r in events.rows]
    assert sent == ([1.0, 2.5] if len(sent) == 2 else [2.0])  # with or without an event for the first step
    assert all(isinstance(r["train_loss"], float) for r in events.rows)


def test_a_batch_without_padding_goes_without_its_mask():
    full = trainer.collate([(0, [5, 6, 7], 0), (1, [8, 9, 10], 1)], 0)
    ragged = trainer.collate([(0, [5, 6, 7], 0), (1, [8], 1)], 0)
    assert trainer.model_inputs(full, CPU)["attention_mask"] is None
    assert torch.equal(trainer.model_inputs(ragged, CPU)["attention_mask"], ragged["attention_mask"])


def test_hf_models_use_sdpa_attention_and_say_so_when_a_type_has_none():
    tokenizer = train_wordpiece(["bir iki üç dört beş"] * 5, {"vocab_size": 100, "min_frequency": 0})
    labels = ({0: "a", 1: "b"}, {"a": 0, "b": 1})
    bert = from_config({"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                        "intermediate_size": 64}, tokenizer, *labels)
    assert bert.config._attn_implementation == "sdpa" and attention_notes(bert) == []
    xlnet = from_config({"model_type": "xlnet", "d_model": 32, "n_layer": 1, "n_head": 2, "d_inner": 64},
                        tokenizer, *labels)
    assert xlnet.config._attn_implementation == "eager"
    assert "not sdpa" in attention_notes(xlnet)[0]


def test_adamw_is_fused_on_cuda_only():
    model = torch.nn.Linear(4, 2)
    hp = Hyperparameters.from_dict({}, "scratch")
    assert not trainer.optimizer_for(model, hp, CPU).defaults.get("fused")
    if torch.cuda.is_available():
        assert trainer.optimizer_for(model.cuda(), hp, torch.device("cuda")).defaults["fused"] is True


def test_compile_is_opt_in_and_changes_no_result(tmp_path, monkeypatch):
    """Traced by dynamo with the eager backend (inductor would take minutes on these cores): the model
    runs compiled, and the run ends as the same run without compile, its artifact loadable."""
    compiled = []
    real = torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: compiled.append(kw) or real(self, **kw))
    monkeypatch.setattr(trainer, "COMPILE_OPTIONS", {"backend": "eager"})
    hp = {**TINY, "epochs": 2, "batch_size": 8}
    finals = {}
    for name, extra in (("plain", {}), ("compiled", {"compile": True})):
        run_dir = write_run_dir(tmp_path, name, {**hp, **extra}, model=SCRATCH)
        assert execute(run_dir) == EXIT_OK, read_events(run_dir)[-1]
        finals[name] = read_events(run_dir)[-1]["final_metrics"]
    assert compiled == [{"backend": "eager"}]
    assert finals["compiled"]["validation"] == finals["plain"]["validation"]
    assert finals["compiled"]["accuracy"] == finals["plain"]["accuracy"]
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "compiled" / "model", trust_remote_code=True)
    assert not any(k.startswith("_orig_mod") for k in model.state_dict())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_batches_are_pinned_rounded_to_8_and_adamw_is_fused(tmp_path, monkeypatch):
    monkeypatch.delenv("MAKAM_WORKER_DEVICE")  # pick the device as a worker would
    seen = {"pinned": [], "widths": [], "fused": []}
    real_step, real_optimizer = trainer.train_step, trainer.optimizer_for

    def train_step(model, window, *args, **kwargs):
        seen["pinned"] += [b["input_ids"].is_pinned() and b["attention_mask"].is_pinned() for b in window]
        seen["widths"] += [b["input_ids"].shape[1] for b in window]
        return real_step(model, window, *args, **kwargs)

    def optimizer_for(model, hp, device=None):
        optimizer = real_optimizer(model, hp, device)
        seen["fused"].append(optimizer.defaults.get("fused"))
        return optimizer

    monkeypatch.setattr(trainer, "train_step", train_step)
    monkeypatch.setattr(trainer, "optimizer_for", optimizer_for)
    run_dir = write_run_dir(tmp_path, "cuda", {**TINY, "epochs": 2, "batch_size": 4, "max_length": 60,
                                               "group_by_length": True}, model=SCRATCH)
    assert execute(run_dir) == EXIT_OK, read_events(run_dir)[-1]
    assert read_events(run_dir)[0]["device"].startswith("cuda:")
    assert seen["pinned"] and all(seen["pinned"])
    assert all(w % 8 == 0 or w == 60 for w in seen["widths"]), seen["widths"]
    assert seen["fused"] == [True]
