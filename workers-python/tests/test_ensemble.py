"""Ensembles of finished runs: two different tiny members (tfidf with LinearSVC, a scratch
transformer) trained here, then combined by `average` (weights fit on validation) and `stack`; the
downloaded ensemble artifact, loaded as its card prints, predicts what the worker evaluated, label
for label on the test split, and a member carved or prepared otherwise is refused naming it.
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from card_blocks import run_card_loader
from conftest import KEYWORDS, SCRATCH, extract, jsonl, read_events
from makam_worker.training.child import EXIT_FAILED, EXIT_OK, execute

FILLER = "bugün yarın sabah akşam hava yol ev kapı masa kitap kalem çay kahve ekmek su pencere".split()
COMMON = {"seed": 5, "lowercase": "turkish"}
MEMBERS = {
    "tfidf": ({"family": "tfidf", "name": "", "config": None, "tokenizer": None}, {**COMMON, "refit": False}),
    "scratch": (dict(SCRATCH),
                {**COMMON, "epochs": 4, "batch_size": 8, "learning_rate": 3e-3, "layers": 1, "heads": 2,
                 "d_model": 32, "ff_dim": 64, "vocab_size": 150, "max_length": 24}),
}


def make_rows(n: int, rng: random.Random) -> list[dict]:
    """`n` texts per label: filler around one of its keywords; one text in four also carries another
    label's keyword, so the members err, and differently."""
    rows = []
    for _ in range(n):
        for label, keywords in KEYWORDS.items():
            words = [rng.choice(FILLER) for _ in range(rng.randint(3, 8))]
            words.insert(rng.randrange(len(words) + 1), rng.choice(keywords))
            if rng.random() < 0.25:
                other = rng.choice([k for k in KEYWORDS if k != label])
                words.insert(rng.randrange(len(words) + 1), rng.choice(KEYWORDS[other]))
            rows.append({"text": " ".join(words).capitalize(), "label": label})
    rng.shuffle(rows)
    return rows


RNG = random.Random(21)
TRAIN, VALIDATION, TEST = make_rows(20, RNG), make_rows(8, RNG), make_rows(8, RNG)


def _run_dir(root, name: str, model: dict, hp: dict, ensemble: dict | None = None):
    for split, rows in (("train", TRAIN), ("validation", VALIDATION), ("test", TEST)):
        path = root / f"{split}.jsonl"
        if not path.exists():
            path.write_bytes(jsonl(rows))
    run_dir = root / name
    run_dir.mkdir()
    spec = {"run_id": name, "model": model, "train_dataset": str(root / "train.jsonl"),
            "validation_dataset": str(root / "validation.jsonl"), "test_dataset": str(root / "test.jsonl"),
            "hyperparameters": hp, "ensemble": ensemble}
    (run_dir / "spec.json").write_text(json.dumps(spec, ensure_ascii=False))
    return run_dir


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """job id -> its run dir, both trained once for the module."""
    root = tmp_path_factory.mktemp("members")
    done = {}
    for family, (model, hp) in MEMBERS.items():
        run_dir = _run_dir(root, f"job_{family}", model, hp)
        assert execute(run_dir) == EXIT_OK, read_events(run_dir)[-1]
        done[f"job_{family}"] = run_dir
    return done


@pytest.fixture()
def evaluated(monkeypatch):
    """The label names the ensemble's final evaluation predicted, in the split's order."""
    from makam_worker.training import ensemble

    seen: list[tuple] = []
    original = ensemble.evaluation_report

    def recording(split, references, predictions, names, *args, **kwargs):
        seen.append((split, [names[i] for i in predictions]))
        return original(split, references, predictions, names, *args, **kwargs)

    monkeypatch.setattr(ensemble, "evaluation_report", recording)
    return seen


def _ensemble(tmp_path, members, method: str, order=("job_tfidf", "job_scratch")):
    model, hp = MEMBERS["tfidf"]
    spec = {"method": method, "members": [{"job_id": j, "artifact": str(members[j] / "model.tar.gz")} for j in order]}
    return _run_dir(tmp_path, "job_ensemble", model, hp, ensemble=spec)


def _artifact(tmp_path, run_dir):
    artifact = tmp_path / "downloaded" / "model"
    extract(run_dir / "model.tar.gz", artifact)
    return artifact


def _log_likelihood(probabilities: np.ndarray, labels: list[int]) -> float:
    return float(np.mean(np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, None))))


def test_average_fits_weights_on_validation_and_the_artifact_predicts_what_the_report_says(tmp_path, members, evaluated):
    from makam_worker.training import ensemble_members, textprep

    run_dir = _ensemble(tmp_path, members, "average")
    assert execute(run_dir) == EXIT_OK, read_events(run_dir)[-1]
    summary = read_events(run_dir)[-1]["final_metrics"]
    assert summary["family"] == "ensemble" and summary["evaluated_on"] == "test"
    weights = summary["ensemble"]["weights"]
    assert [m["job_id"] for m in summary["ensemble"]["members"]] == ["job_tfidf", "job_scratch"]
    assert all(w >= 0 for w in weights) and sum(weights) == pytest.approx(1.0)

    # The weights maximise the validation log-likelihood of the members at their temperatures: no
    # corner of the simplex, nor its middle, nor a step away from them, does better on validation.
    artifact = _artifact(tmp_path, run_dir)
    options = json.loads((artifact / "preprocessing.json").read_text())
    names = sorted(KEYWORDS)
    y = [names.index(r["label"]) for r in VALIDATION]
    prepared = [textprep.prepare_text(r["text"], **options) for r in VALIDATION]
    temperatures = summary["ensemble"]["temperatures"]
    assert [m["temperature"] for m in summary["ensemble"]["members"]] == temperatures and all(t > 0 for t in temperatures)
    probabilities = [ensemble_members.calibrated(ensemble_members.member_probabilities(artifact / "members" / j, prepared), t)
                     for j, t in zip(("job_tfidf", "job_scratch"), temperatures)]
    fitted = _log_likelihood(sum(w * p for w, p in zip(weights, probabilities)), y)
    for w in (0.0, 0.5, 1.0, min(1.0, weights[0] + 0.1), max(0.0, weights[0] - 0.1)):
        assert fitted >= _log_likelihood(w * probabilities[0] + (1 - w) * probabilities[1], y) - 1e-6, (w, weights)

    split, predictions = evaluated[-1]
    assert split == "test"
    assert summary["accuracy"] == pytest.approx(np.mean([p == r["label"] for p, r in zip(predictions, TEST)]))
    assert run_card_loader(artifact, [r["text"] for r in TEST]) == predictions
    metrics = json.loads((artifact / "metrics.json").read_text())
    assert metrics["confusion_matrix"]["labels"] == names and metrics["ensemble"]["weights"] == weights
    for j in ("job_tfidf", "job_scratch"):
        assert (artifact / "members" / j / "README.md").is_file()  # each member as it was, its own card inside


def test_the_weights_reach_the_optimum_even_where_the_log_likelihood_is_flat():
    """At the optimum of the mean log-likelihood on the simplex, every member with weight > 0 has the
    same gradient component, and none with weight 0 a lower one (KKT). Random members of similar
    accuracy put it near equal weights, where the loss is flat: SLSQP's default tolerance stopped at
    the starting point there."""
    from makam_worker.training.ensemble import fit_weights

    rng = np.random.default_rng(0)
    for case in range(40):
        n, k, n_labels = 300, int(rng.integers(2, 4)), 4
        y = rng.integers(0, n_labels, n)
        members = []
        for _ in range(k):
            logits = rng.normal(0, 1, (n, n_labels))
            logits[np.arange(n), y] += rng.uniform(1.5, 2.5)
            members.append(np.exp(logits) / np.exp(logits).sum(1, keepdims=True))
        w = np.array(fit_weights(members, y.tolist()))
        picked = np.stack([p[np.arange(n), y] for p in members], axis=1)
        gradient = -np.mean(picked / (picked @ w)[:, None], axis=0)
        assert gradient[w > 1e-6].max() - gradient.min() < 1e-5, (case, w, gradient)


def test_a_members_probability_scale_does_not_decide_its_weight(tmp_path, members, monkeypatch):
    """A member as accurate but with flatter probabilities (a LinearSVC's softmaxed margins are flat
    next to a network's) gets the same weight once its temperature is fit: without the temperatures,
    flattening the tfidf member 5-fold moved its weight (on TTC-3600 such a member got weight 0)."""
    from makam_worker.training import ensemble_members

    def weights_and_accuracy(name: str) -> tuple[list[float], float]:
        (tmp_path / name).mkdir()
        run_dir = _ensemble(tmp_path / name, members, "average")
        assert execute(run_dir) == EXIT_OK, read_events(run_dir)[-1]
        summary = read_events(run_dir)[-1]["final_metrics"]
        return summary["ensemble"]["weights"], summary["accuracy"]

    plain_weights, plain_accuracy = weights_and_accuracy("plain")
    original = ensemble_members.member_probabilities

    def flatter(d, texts):
        p = original(d, texts)
        return ensemble_members.calibrated(p, 5.0) if "job_tfidf" in str(d) else p

    monkeypatch.setattr(ensemble_members, "member_probabilities", flatter)
    flat_weights, flat_accuracy = weights_and_accuracy("flat")
    assert flat_weights == pytest.approx(plain_weights, abs=1e-3) and flat_accuracy == plain_accuracy


def test_stack_reports_out_of_fold_validation_and_the_artifact_predicts_what_the_report_says(tmp_path, members, evaluated):
    run_dir = _ensemble(tmp_path, members, "stack", order=("job_scratch", "job_tfidf"))
    assert execute(run_dir) == EXIT_OK, read_events(run_dir)[-1]
    summary = read_events(run_dir)[-1]["final_metrics"]
    assert summary["ensemble"]["method"] == "stack" and summary["ensemble"]["weights"] is None
    assert summary["ensemble"]["validation_figures"] == "out-of-fold within validation"
    artifact = _artifact(tmp_path, run_dir)
    assert (artifact / "stacker.joblib").is_file()
    _, predictions = evaluated[-1]
    assert run_card_loader(artifact, [r["text"] for r in TEST]) == predictions
    card = (artifact / "README.md").read_text()
    assert "Method: stack" in card and "job_tfidf" in card and "job_scratch" in card


@pytest.fixture(scope="module")
def refit_members(tmp_path_factory):
    """The same two members with refit on: job id -> run dir."""
    root = tmp_path_factory.mktemp("refit-members")
    done = {}
    for family, (model, hp) in MEMBERS.items():
        run_dir = _run_dir(root, f"job_{family}_refit", model, {**hp, "refit": True})
        assert execute(run_dir) == EXIT_OK, read_events(run_dir)[-1]
        done[f"job_{family}_refit"] = run_dir
    return done


def test_a_refit_member_keeps_its_first_models_validation_probabilities(tmp_path, members, refit_members):
    """The refit run's first model is the run without refit (same seed): the probabilities its artifact
    keeps are that model's on validation, not the refit model's, which learnt those texts."""
    from makam_worker.training import ensemble_members, textprep

    prepared = [textprep.prepare_text(r["text"], lowercase="turkish") for r in VALIDATION]
    for family in MEMBERS:
        refit_dir = _artifact(tmp_path / family, refit_members[f"job_{family}_refit"])
        summary = json.loads((refit_dir / "metrics.json").read_text())["summary"]
        assert summary["refit"]["validation_probabilities"] == "validation_probabilities.npy"
        kept = np.load(refit_dir / "validation_probabilities.npy", allow_pickle=False)
        first = ensemble_members.member_probabilities(_artifact(tmp_path / f"{family}-plain", members[f"job_{family}"]), prepared)
        np.testing.assert_allclose(kept, first, atol=1e-5, err_msg=family)
        refit_own = ensemble_members.member_probabilities(refit_dir, prepared)
        assert not np.allclose(kept, refit_own, atol=1e-3), f"{family}: the kept probabilities are the refit model's"


def test_an_ensemble_of_refit_members_fits_on_their_first_models_and_predicts_with_the_refit_ones(tmp_path, members, refit_members, evaluated):
    from makam_worker.training import ensemble_members, textprep

    order = ("job_tfidf_refit", "job_scratch_refit")
    run_dir = _ensemble(tmp_path, refit_members, "average", order=order)
    assert execute(run_dir) == EXIT_OK, read_events(run_dir)[-1]
    summary = read_events(run_dir)[-1]["final_metrics"]
    ensembled = summary["ensemble"]["members"]
    assert [m["refit"] for m in ensembled] == [True, True]
    # Each member's validation figure is its first model's, as its own report gives it.
    for m, j in zip(ensembled, order):
        own = read_events(refit_members[j])[-1]["final_metrics"]["validation"]["accuracy"]
        assert m["validation_accuracy"] == pytest.approx(own), j
    # The same temperatures and weights as the ensemble of the runs without refit (their validation
    # probabilities are the same), applied to the refit models on test.
    (tmp_path / "plain").mkdir()
    plain = _ensemble(tmp_path / "plain", members, "average")
    assert execute(plain) == EXIT_OK
    plain_summary = read_events(plain)[-1]["final_metrics"]
    assert summary["ensemble"]["weights"] == pytest.approx(plain_summary["ensemble"]["weights"], abs=1e-4)
    assert summary["ensemble"]["temperatures"] == pytest.approx(plain_summary["ensemble"]["temperatures"], rel=1e-3)
    artifact = _artifact(tmp_path, run_dir)
    _, predictions = evaluated[-2]  # the refit ensemble's, before the plain one's
    assert run_card_loader(artifact, [r["text"] for r in TEST]) == predictions
    options = json.loads((artifact / "preprocessing.json").read_text())
    prepared = [textprep.prepare_text(r["text"], **options) for r in TEST]
    combined = ensemble_members.combine(summary["ensemble"] | {"labels": sorted(KEYWORDS)},
                                        [ensemble_members.member_probabilities(artifact / "members" / j, prepared) for j in order])
    assert [sorted(KEYWORDS)[i] for i in combined.argmax(1)] == predictions
    assert "refit member" in (artifact / "README.md").read_text()


def test_a_refit_member_without_its_first_models_probabilities_fails_the_run_naming_it(tmp_path, refit_members):
    import tarfile

    source = refit_members["job_tfidf_refit"]
    old = tmp_path / "job_old"
    old.mkdir()
    with tarfile.open(source / "model.tar.gz") as src, tarfile.open(old / "model.tar.gz", "w:gz") as dst:
        for member in src.getmembers():  # the artifact of a refit run from before they were kept
            if not member.name.endswith("validation_probabilities.npy"):
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    run_dir = _ensemble(tmp_path, {**refit_members, "job_old": old}, "average", order=("job_scratch_refit", "job_old"))
    assert execute(run_dir) == EXIT_FAILED
    finished = read_events(run_dir)[-1]
    assert finished["error_code"] == "invalid_member" and "member job_old was refit" in finished["error_message"]


def test_a_member_prepared_otherwise_fails_the_run_naming_it(tmp_path, members):
    model, hp = MEMBERS["tfidf"]
    other = _run_dir(tmp_path, "job_other", model, {**hp, "lowercase": "none"})
    assert execute(other) == EXIT_OK
    run_dir = _ensemble(tmp_path, {**members, "job_other": other}, "average", order=("job_tfidf", "job_other"))
    assert execute(run_dir) == EXIT_FAILED
    finished = read_events(run_dir)[-1]
    assert finished["error_code"] == "invalid_member" and "member job_other has lowercase 'none'" in finished["error_message"]


def test_through_grpc_the_member_models_are_uploaded_once_and_a_missing_one_is_refused(tmp_path, members):
    """The worker's side of an ensemble job: HasArtifact/UploadArtifact store each member's archive by
    its sha256, StartRun refuses an ensemble whose member is not on the worker (naming it), and one
    whose members are there runs to an artifact."""
    import hashlib

    import grpc

    from makam.worker.v1 import worker_pb2 as pb
    from makam.worker.v1 import worker_pb2_grpc
    from makam_worker.server import create_server

    server, port = create_server("127.0.0.1:0", tmp_path / "state")
    server.start()
    try:
        stub = worker_pb2_grpc.WorkerServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        datasets = {}
        for split in ("train", "validation", "test"):
            data = (members["job_tfidf"].parent / f"{split}.jsonl").read_bytes()
            datasets[split] = hashlib.sha256(data).hexdigest()
            stub.UploadDataset(iter([pb.UploadDatasetRequest(header=pb.DatasetHeader(sha256=datasets[split], size_bytes=len(data))),
                                     pb.UploadDatasetRequest(chunk=data)]), timeout=60)
        archives = {j: (members[j] / "model.tar.gz").read_bytes() for j in ("job_tfidf", "job_scratch")}
        shas = {j: hashlib.sha256(b).hexdigest() for j, b in archives.items()}

        def request(run_id: str) -> pb.StartRunRequest:
            model, hp = MEMBERS["tfidf"]
            r = pb.StartRunRequest(run_id=run_id, train_dataset_sha256=datasets["train"],
                                   validation_dataset_sha256=datasets["validation"], test_dataset_sha256=datasets["test"])
            r.model.family = model["family"]
            r.hyperparameters.update(hp)
            r.ensemble.method = "average"
            for j in ("job_tfidf", "job_scratch"):
                r.ensemble.members.add(job_id=j, artifact_sha256=shas[j])
            return r

        def upload(j: str) -> None:
            header = pb.ArtifactHeader(sha256=shas[j], size_bytes=len(archives[j]))
            stub.UploadArtifact(iter([pb.UploadArtifactRequest(header=header), pb.UploadArtifactRequest(chunk=archives[j])]), timeout=60)

        assert not stub.HasArtifact(pb.HasArtifactRequest(sha256=shas["job_tfidf"]), timeout=60).present
        upload("job_tfidf")
        assert stub.HasArtifact(pb.HasArtifactRequest(sha256=shas["job_tfidf"]), timeout=60).present
        with pytest.raises(grpc.RpcError) as refused:
            stub.StartRun(request("ens-missing"), timeout=60)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "ensemble member job_scratch is not on this worker" in refused.value.details()

        upload("job_scratch")
        assert stub.StartRun(request("ens"), timeout=60).created
        events = list(stub.WatchRun(pb.WatchRunRequest(run_id="ens"), timeout=300))
        finished = events[-1].finished
        assert finished.state == pb.RunState.RUN_STATE_SUCCEEDED, finished.error_message
        assert finished.final_metrics["family"] == "ensemble"
        assert [m["job_id"] for m in finished.final_metrics["ensemble"]["members"]] == ["job_tfidf", "job_scratch"]
    finally:
        server.stop(0)
