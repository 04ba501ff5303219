"""The run spec typed once: RunSpec round-trips through spec.json, refuses what it does not know, and
a spec.json the child cannot parse fails the run with a code and a message naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import DATASET, model_spec, read_events, write_run_dir
from makam_worker.contracts.hyperparameters import Hyperparameters
from makam_worker.run_spec import InvalidRunSpec, ModelSpec, RunSpec
from makam_worker.training.child import EXIT_FAILED, execute


def full_spec() -> dict:
    return {
        "run_id": "job-1",
        "model": model_spec(),
        "train_dataset": "/state/datasets/a.jsonl",
        "validation_dataset": "/state/datasets/b.jsonl",
        "test_dataset": None,
        "unlabeled_dataset": None,
        "hyperparameters": {"epochs": 2, "loss": "focal", "focal_alpha": {"aşk": 2}, "seed": 7.0},
        "resume_checkpoint_sha256": "ab" * 32,
        "devices": 2,
        "ensemble": {"method": "stack", "members": [{"job_id": "job-a", "artifact": "/state/artifacts/a.tar.gz"},
                                                {"job_id": "job-b", "artifact": "/state/artifacts/b.tar.gz"}]},
    }


def test_a_spec_round_trips_through_json():
    spec = RunSpec.from_dict(full_spec())
    assert spec.model == ModelSpec(family="encoder", config=model_spec()["config"], tokenizer=model_spec()["tokenizer"])
    assert spec.train_dataset == Path("/state/datasets/a.jsonl") and spec.test_dataset is None
    assert spec.hyperparameters == Hyperparameters.from_dict(full_spec()["hyperparameters"], "encoder")
    assert spec.hyperparameters.seed == 7 and isinstance(spec.hyperparameters.seed, int)
    assert spec.datasets == [Path("/state/datasets/a.jsonl"), Path("/state/datasets/b.jsonl")]
    again = RunSpec.from_json(spec.to_json())
    assert again == spec
    written = json.loads(spec.to_json())
    # Every key is written, the family's hyperparameters with their defaults filled.
    assert set(written) == set(full_spec())
    assert written["hyperparameters"] == spec.hyperparameters.to_dict()
    # A checkpoint's meta.json keeps this dict and a resume compares it: its shape must not drift.
    assert written["model"] == model_spec()


def test_nullable_keys_may_be_left_out():
    spec = {k: v for k, v in full_spec().items() if k not in ("validation_dataset", "test_dataset",
                                                             "resume_checkpoint_sha256")}
    spec["model"] = {"family": "tfidf"}
    spec["hyperparameters"] = {}
    parsed = RunSpec.from_dict(spec)
    assert parsed.validation_dataset is None and parsed.resume_checkpoint_sha256 is None
    assert parsed.model == ModelSpec(family="tfidf", name="", config=None, tokenizer=None)


def without(key: str) -> dict:
    spec = full_spec()
    del spec[key]
    return spec


@pytest.mark.parametrize(("spec", "message"), [
    ({**full_spec(), "test_datset": "/x"}, "unknown key 'test_datset'"),
    ({**full_spec(), "model": {**model_spec(), "nmae": "bert"}}, "unknown key 'model.nmae'"),
    (without("train_dataset"), "missing key 'train_dataset'"),
    (without("hyperparameters"), "missing key 'hyperparameters'"),
    ({**full_spec(), "model": {"name": "bert"}}, "missing key 'model.family'"),
    ({**full_spec(), "model": {**model_spec(), "family": "rnn"}}, "model.family 'rnn' is not one of"),
    ({**full_spec(), "train_dataset": 3}, "train_dataset must be a string, not int"),
    ({**full_spec(), "model": {**model_spec(), "config": "bert"}}, "model.config must be an object or null"),
    ([], "the spec must be an object, not list"),
])
def test_a_bad_spec_is_refused_naming_the_key(spec, message):
    with pytest.raises(InvalidRunSpec, match=message.replace(".", r"\.").replace("(", r"\(")) as info:
        RunSpec.from_dict(spec)
    assert info.value.code == "invalid_spec"


def test_refused_hyperparameters_keep_their_own_code():
    with pytest.raises(InvalidRunSpec, match="learning_rat") as info:
        RunSpec.from_dict({**full_spec(), "hyperparameters": {"learning_rat": 0.1}})
    assert info.value.code == "invalid_hyperparameters"


def test_hyperparameters_of_another_family_are_refused():
    spec = RunSpec.from_dict(full_spec())
    with pytest.raises(InvalidRunSpec, match="for the tfidf family and the model is encoder"):
        RunSpec(run_id="x", model=spec.model, train_dataset=spec.train_dataset,
                hyperparameters=Hyperparameters.from_dict({}, "tfidf"))


def write_spec(tmp_path: Path, text: str) -> Path:
    run_dir = write_run_dir(tmp_path, "bad-spec", {})
    (run_dir / "spec.json").write_text(text)
    return run_dir


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda s: {**s, "test_datset": None}, "unknown key 'test_datset'"),
    (lambda s: {k: v for k, v in s.items() if k != "run_id"}, "missing key 'run_id'"),
])
def test_a_bad_spec_json_fails_the_run_with_invalid_spec(tmp_path, mutate, message):
    run_dir = write_run_dir(tmp_path, "bad-spec", {})
    spec = json.loads((run_dir / "spec.json").read_text())
    (run_dir / "spec.json").write_text(json.dumps(mutate(spec)))
    assert execute(run_dir) == EXIT_FAILED
    events = read_events(run_dir)
    finished = events[-1]
    assert (finished["state"], finished["error_code"], finished["retryable"]) == ("FAILED", "invalid_spec", False)
    assert message in finished["error_message"]
    assert [e["type"] for e in events] == ["finished"]  # refused before any data is read


def test_a_spec_json_that_is_not_json_fails_the_run(tmp_path):
    run_dir = write_run_dir(tmp_path, "not-json", {})
    (run_dir / "spec.json").write_text("{")
    assert execute(run_dir) == EXIT_FAILED
    finished = read_events(run_dir)[-1]
    assert finished["error_code"] == "invalid_spec" and "spec.json is not JSON" in finished["error_message"]


def test_the_server_writes_a_spec_the_child_parses(tmp_path):
    """RunManager writes spec.json through RunSpec.to_json; what it wrote parses back to the same spec."""
    from makam_worker.run_manager import RunManager

    train = tmp_path / "train.jsonl"
    train.write_bytes(DATASET)
    spec = RunSpec.from_dict({**full_spec(), "run_id": "written", "train_dataset": str(train),
                              "validation_dataset": None, "resume_checkpoint_sha256": None,
                              "hyperparameters": {"epochs": 1000}})
    runs = RunManager(tmp_path / "state", cancel_grace_s=5.0)
    runs.start("written", spec)
    try:
        assert RunSpec.from_json(runs.paths("written").spec.read_text(encoding="utf-8")) == spec
        assert train in runs.datasets_in_use()
    finally:
        runs.cancel("written")
