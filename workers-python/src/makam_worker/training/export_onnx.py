"""ONNX export (`export_onnx`): the trained model as model.onnx (fp32, torch.onnx's dynamo exporter,
dynamic batch and sequence axes) and model.int8.onnx (onnxruntime's dynamic int8 quantization),
beside the safetensors in the model directory.

Checked before it ships: onnxruntime's fp32 predictions on the evaluated split (test, else
validation), encoded by the shipped textprep.encode as the card's code encodes them, must equal
PyTorch's (argmax identical, probabilities within TOLERANCE); an export that disagrees is removed
and the card says why. The int8 model's agreement is measured and reported, not required.
Throughput of PyTorch fp32, ONNX fp32 and ONNX int8 is measured in the same run, same batches,
same threads.

The decoder exports its LoRA-merged model (whatever `export` ships as safetensors). tfidf needs
skl2onnx, which this worker does not have: `unavailable` says so.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FP32, INT8 = "model.onnx", "model.int8.onnx"
TOLERANCE = 1e-4  # max abs difference of a probability, fp32 ONNX vs fp32 PyTorch on CPU
MIN_SECONDS = 0.5  # each throughput figure times whole passes over the split for at least this long
TWO_GB = 2**31  # protobuf's limit: larger models keep their weights in external data files
SKL2ONNX_MISSING = "ONNX export needs skl2onnx, not installed on this worker"

CARD_CODE = """\
d = "path/to/unpacked/model"
texts = ["..."]
import json, sys
sys.path.insert(0, d)
import numpy as np
import onnxruntime as ort
import textprep  # shipped in the artifact: the preparation and truncation the model was trained with
from transformers import AutoTokenizer
texts = [textprep.prepare_text(t, **json.load(open(f"{d}/preprocessing.json"))) for t in texts]
tokenizer = AutoTokenizer.from_pretrained(d{remote})
labels = json.load(open(f"{d}/labels.json"))
session = ort.InferenceSession(f"{d}/model.onnx")  # or model.int8.onnx: smaller and faster, a little less exact
batch = textprep.encode(tokenizer, texts, max_length={max_length}, truncation={truncation!r})
logits = session.run(["logits"], {i.name: np.array(batch[i.name], dtype=np.int64) for i in session.get_inputs()})[0]
probabilities = np.exp(logits - logits.max(-1, keepdims=True))
probabilities /= probabilities.sum(-1, keepdims=True)
predicted = [labels[i] for i in logits.argmax(-1)]"""


def available() -> bool:
    """Whether this worker can export neural models (capabilities.py advertises it)."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime", "onnxscript"))


def unavailable(reason: str) -> dict[str, Any]:
    return {"status": "not_exported", "reason": reason}


def tfidf_reason() -> str:
    if importlib.util.find_spec("skl2onnx") is None:
        return SKL2ONNX_MISSING
    return "ONNX export of the tfidf family through skl2onnx is not implemented yet"


def export(model: Any, tokenizer: Any, model_dir: Path, *, texts: list[str], split: str, max_length: int,
           truncation: str, batch_size: int, log: Any, check_stop: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Exports, checks and measures; returns what metrics.json's `onnx` holds (`status` "exported",
    or "not_exported" with the `reason`). Leaves `model` merged, in fp32 and on the CPU: call it last."""
    import torch

    if not available():
        return unavailable("ONNX export needs onnx, onnxruntime and onnxscript, not all installed on this worker")
    if getattr(getattr(model, "config", None), "quantization_config", None) is not None:
        return unavailable("a 4-bit (load_in_4bit) base cannot be exported to ONNX; train without load_in_4bit")
    if hasattr(model, "merge_and_unload"):  # peft: the LoRA weights folded into the base, as export "merged" ships
        model = model.merge_and_unload()
    model._compiled_call_impl = None  # `compile: true` compiled in place; the exporter traces the eager module
    model = model.to("cpu", torch.float32).eval()
    batches = _batches(tokenizer, texts, max_length, truncation, batch_size)
    if not batches:
        return unavailable(f"the {split} split is empty: nothing to check an export against")
    names = list(batches[0])
    wrapper = _Logits(model, names).eval()
    fp32, int8 = model_dir / FP32, model_dir / INT8
    try:
        _export(wrapper, names, fp32, max_length, batches[0])
        check_stop()
        _quantize(fp32, int8)
    except Exception as e:  # an architecture the exporter cannot trace: the job keeps its PyTorch model
        _remove(model_dir)
        log.warning("ONNX export failed: %s: %s", type(e).__name__, e)
        return unavailable(f"the exporter failed: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")

    import onnxruntime as ort

    threads = torch.get_num_threads()
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    sessions = {fmt: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                for fmt, path in (("onnx_fp32", fp32), ("onnx_int8", int8))}

    @torch.no_grad()
    def pytorch(batch: dict[str, Any]) -> Any:
        return wrapper(*(torch.tensor(batch[n], dtype=torch.long) for n in names)).numpy()

    def onnxruntime(session: Any) -> Callable[[dict[str, Any]], Any]:
        import numpy as np

        return lambda batch: session.run(["logits"], {n: np.asarray(batch[n], dtype=np.int64) for n in names})[0]

    runners = {"pytorch_fp32": pytorch, **{fmt: onnxruntime(s) for fmt, s in sessions.items()}}
    probabilities = {fmt: _softmax(_concat([run(b) for b in batches])) for fmt, run in runners.items()}
    check_stop()
    reference = probabilities["pytorch_fp32"]
    formats: dict[str, dict[str, Any]] = {
        "pytorch_fp32": {"files": sorted(p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*.safetensors")),
                         "bytes": sum(p.stat().st_size for p in model_dir.rglob("*.safetensors"))},
        "onnx_fp32": {"files": _files(model_dir, FP32), "bytes": _size(model_dir, FP32)},
        "onnx_int8": {"files": _files(model_dir, INT8), "bytes": _size(model_dir, INT8)},
    }
    for fmt in ("onnx_fp32", "onnx_int8"):
        formats[fmt].update(_agreement(reference, probabilities[fmt]))
    for fmt, run in runners.items():
        formats[fmt]["texts_per_second"] = _throughput(run, batches)
        check_stop()
    result = {
        "status": "exported", "checked_on": split, "examples": len(texts), "tolerance": TOLERANCE,
        "batch_size": batch_size, "threads": threads, "device": "cpu", "inputs": names,
        "onnxruntime": ort.__version__, "formats": formats,
    }
    fp32_check = formats["onnx_fp32"]
    if fp32_check["argmax_disagreements"] or fp32_check["max_abs_probability_difference"] > TOLERANCE:
        _remove(model_dir)
        reason = (f"onnxruntime's fp32 predictions differ from PyTorch's on the {split} split "
                  f"({fp32_check['argmax_disagreements']} argmax disagreements, max probability difference "
                  f"{fp32_check['max_abs_probability_difference']:.2e} > {TOLERANCE:g}): the ONNX files were not shipped")
        log.warning(reason)
        return {**unavailable(reason), "measured": result}
    return result


class _Logits:
    """The model as positional int64 inputs -> logits, which is what the exporter and the check call."""

    def __new__(cls, model: Any, names: list[str]) -> Any:
        import torch

        class Logits(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
                return self.model(**dict(zip(names, inputs))).logits

        return Logits()


def _batches(tokenizer: Any, texts: list[str], max_length: int, truncation: str, batch_size: int) -> list[dict[str, Any]]:
    from makam_worker.training import textprep

    return [textprep.encode(tokenizer, texts[i : i + batch_size], max_length, truncation)
            for i in range(0, len(texts), batch_size)]


def _export(wrapper: Any, names: list[str], path: Path, max_length: int, sample: dict[str, Any]) -> None:
    import torch

    # A sample of 2 rows, the second padded: batch and sequence sizes of 1 would be specialised away,
    # and a mask without padding lets some models drop the masking path from the trace.
    width = max(2, min(max_length, 8))
    row = (list(sample["input_ids"][0]) * width)[:width]  # real ids, so a head reading the last real token finds one
    input_ids = torch.tensor([row, row], dtype=torch.long)
    input_ids[1, width // 2 :] = _pad_id(sample)
    mask = torch.ones_like(input_ids)
    mask[1, width // 2 :] = 0
    args = [input_ids, mask]
    shapes: list[dict[int, str]] = [{0: "batch", 1: "sequence"}, {0: "batch", 1: "sequence"}]
    if "char_ngram_ids" in names:
        args.append(torch.ones((2, 3), dtype=torch.long))
        shapes.append({0: "batch", 1: "char_ngrams"})
    # The exporter logs each stage at INFO and warns about optional torchvision ops.
    quiet = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.ERROR)
    try:
        program = torch.onnx.export(wrapper, tuple(args), dynamo=True, input_names=names, output_names=["logits"],
                                    dynamic_shapes=(tuple(shapes),), verbose=False)
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)
    program.save(str(path), external_data=_parameter_bytes(wrapper) >= TWO_GB)


def _pad_id(sample: dict[str, Any]) -> int:
    """The pad id the encoder used: the id at a masked position, else any id in the sample."""
    for ids, mask in zip(sample["input_ids"], sample["attention_mask"]):
        for token, m in zip(ids, mask):
            if not m:
                return int(token)
    return int(sample["input_ids"][0][0])


def _parameter_bytes(module: Any) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def _quantize(fp32: Path, int8: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Without the exporter's value_info: the quantizer's shape inference rejects some of its shapes
    # (BERT's pooler: "Inferred shape and existing shape differ"); it infers them again itself.
    graph = onnx.load(str(fp32), load_external_data=False)
    del graph.graph.value_info[:]
    source = fp32.with_name("model.for-quantization.onnx")  # beside it: external data paths stay valid
    onnx.save(graph, str(source))
    try:
        quantize_dynamic(str(source), str(int8), weight_type=QuantType.QInt8,
                         use_external_data_format=_size(fp32.parent, fp32.name) >= TWO_GB)
    finally:
        source.unlink(missing_ok=True)


def _files(model_dir: Path, name: str) -> list[str]:
    """The ONNX file and its external data files, if any."""
    return sorted(p.name for p in model_dir.iterdir() if p.name == name or p.name.startswith(name + "."))


def _size(model_dir: Path, name: str) -> int:
    return sum((model_dir / f).stat().st_size for f in _files(model_dir, name))


def _remove(model_dir: Path) -> None:
    for name in (FP32, INT8):
        for f in _files(model_dir, name) if model_dir.is_dir() else []:
            (model_dir / f).unlink()


def _concat(parts: list[Any]) -> Any:
    import numpy as np

    return np.concatenate(parts, axis=0)


def _softmax(logits: Any) -> Any:
    import numpy as np

    z = logits.astype(np.float64)
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def _agreement(reference: Any, other: Any) -> dict[str, Any]:
    """Argmax agreement with PyTorch, and the largest probability difference. A row whose top two
    PyTorch probabilities lie within TOLERANCE is a tie at this precision: either argmax is right."""
    import numpy as np

    top2 = np.sort(reference, axis=-1)[:, -2:] if reference.shape[1] > 1 else np.zeros((len(reference), 2))
    ties = (top2[:, 1] - top2[:, 0]) <= TOLERANCE
    same = reference.argmax(-1) == other.argmax(-1)
    return {
        "argmax_agreement": float(same.mean()),
        "argmax_disagreements": int((~same & ~ties).sum()),
        "max_abs_probability_difference": float(np.abs(reference - other).max()),
    }


def _throughput(run: Callable[[dict[str, Any]], Any], batches: list[dict[str, Any]]) -> float:
    """Texts per second over whole passes of the split, after one warm-up batch."""
    run(batches[0])
    texts = sum(len(b["input_ids"]) for b in batches)
    done, started = 0, time.perf_counter()
    while True:
        for batch in batches:
            run(batch)
        done += texts
        elapsed = time.perf_counter() - started
        if elapsed >= MIN_SECONDS:
            return done / elapsed


def card_section(onnx: dict[str, Any] | None, *, family: str, max_length: int | None, truncation: str) -> list[str]:
    """The model card's "## ONNX" section: sizes, throughput, the check, and onnxruntime code."""
    if onnx is None:
        return []
    if onnx["status"] != "exported":
        return ["## ONNX", "", f"Not exported: {onnx['reason']}.", ""]
    f = onnx["formats"]
    names = {"pytorch_fp32": "PyTorch fp32 (safetensors)", "onnx_fp32": "ONNX fp32 (model.onnx)",
             "onnx_int8": "ONNX int8, dynamic quantization (model.int8.onnx)"}

    def agreement(fmt: str) -> str:
        if fmt == "pytorch_fp32":
            return "reference"
        return (f"{f[fmt]['argmax_agreement']:.2%} same label, max probability difference "
                f"{f[fmt]['max_abs_probability_difference']:.1e}")

    code = (CARD_CODE.replace("{remote}", ", trust_remote_code=True" if family == "scratch" else "")
            .replace("{max_length}", str(max_length)).replace("{truncation!r}", repr(truncation)))
    return [
        "## ONNX",
        "",
        f"Measured on CPU in this run on the {onnx['checked_on']} split ({onnx['examples']} texts), batches of "
        f"{onnx['batch_size']}, {onnx['threads']} thread(s), onnxruntime {onnx['onnxruntime']}. The fp32 export "
        f"was checked against PyTorch: same label for every text, probabilities within {onnx['tolerance']:g}.",
        "",
        "| format | size (bytes) | texts/s | agreement with PyTorch |",
        "| --- | --- | --- | --- |",
        *(f"| {names[fmt]} | {f[fmt]['bytes']} | {f[fmt]['texts_per_second']:.1f} | {agreement(fmt)} |" for fmt in names),
        "",
        "Serving with onnxruntime (needs numpy, onnxruntime, transformers"
        + (", and torch and sentencepiece for the shipped tokenizer" if family == "scratch" else "") + "):",
        "",
        "```python",
        code,
        "```",
        "",
    ]
