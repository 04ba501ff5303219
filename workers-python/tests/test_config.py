import pytest

from makam_worker.training.config import FAMILIES, Hyperparameters

DATA = {
    "seed": 42, "validation_fraction": 0.1, "test_fraction": 0.0, "remove_eval_duplicates": True,
    "unicode_nfc": True, "unescape_newlines": True, "drop_chord_lines": False, "export_onnx": False, "cv_folds": 0,
    "tracker": "none",
}
COMMON = {
    "epochs": 3, "batch_size": 16, "warmup_ratio": 0.1, "warmup_steps": 0, "lr_scheduler": "linear",
    "weight_decay": 0.01, "max_grad_norm": 1.0, "gradient_accumulation_steps": 1, "precision": "auto",
    "label_smoothing": 0.0, "loss": "cross_entropy", "focal_gamma": 2.0, "focal_alpha": None, "class_weights": None,
    "early_stopping_patience": 0, "metric_for_best_model": "macro_f1", "truncation": "head",
    "group_by_length": False, "compile": False, "augment_word_deletion": 0.0, "augment_word_swap": 0.0,
    "augment_span_mask": 0.0, "augment_line_shuffle": 0.0, "checkpoint_every_epochs": 1,
    "checkpoint_every_minutes": 0.0,
}
MLM = {"mlm_epochs": 0, "mlm_probability": 0.15, "mlm_learning_rate": None}
EXPECTED = {
    "encoder": {**DATA, **COMMON, "refit": False, "lowercase": "none", "learning_rate": 5e-5, "max_length": 128,
                "gradient_checkpointing": False, **MLM},
    "decoder": {**DATA, **COMMON, "refit": False, "lowercase": "none", "learning_rate": 1e-4, "max_length": 256,
                "gradient_checkpointing": False, "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.05,
                "lora_target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"], "load_in_4bit": False,
                "export": "adapter"},
    "scratch": {**DATA, **COMMON, "refit": False, "lowercase": "turkish", "learning_rate": 5e-4, "max_length": 256,
                "layers": 4, "heads": 4, "d_model": 256, "ff_dim": 1024, "dropout": 0.1, "vocab_size": 8000,
                "tokenizer_model": "bpe", "pooling": "mean",
                "char_ngram_buckets": 0, "char_ngram_sizes": "3-5", "char_ngram_max_words": None,
                "char_ngram_word_bigrams": False, **MLM},
    "tfidf": {**DATA, "refit": True, "lowercase": "turkish", "class_weights": None, "word_ngram_max": 2, "char_ngram_min": 2, "char_ngram_max": 5,
              "C": 1.0, "classifier": "linear_svc", "term_weighting": "sublinear_tfidf", "decision_offsets": "none",
              "max_features": None},
}


@pytest.mark.parametrize("family", FAMILIES)
def test_defaults_per_family_are_the_contract(family):
    assert Hyperparameters.from_dict({}, family).to_dict() == EXPECTED[family]


def test_the_defaults_cli_prints_them(capsys):
    import json

    from makam_worker.training.config import main

    assert main(["scratch"]) == 0
    assert json.loads(capsys.readouterr().out) == EXPECTED["scratch"]


def test_integral_floats_from_a_struct_become_ints():
    hp = Hyperparameters.from_dict({"epochs": 3.0, "batch_size": 8.0, "learning_rate": 1, "max_length": 64.0})
    assert (hp.epochs, hp.batch_size, hp.max_length) == (3, 8, 64)
    assert isinstance(hp.epochs, int) and isinstance(hp.learning_rate, float)


def test_structured_values_are_taken():
    hp = Hyperparameters.from_dict(
        {"class_weights": {"pop": 2, "rock": 0.5}, "focal_alpha": {"pop": 1.5}, "loss": "focal"}, "scratch")
    assert hp.class_weights == {"pop": 2.0, "rock": 0.5} and hp.focal_alpha == {"pop": 1.5}
    assert Hyperparameters.from_dict({"class_weights": "balanced"}).class_weights == "balanced"
    hp = Hyperparameters.from_dict({"lora_target_modules": ["q_proj"], "export": "merged"}, "decoder")
    assert hp.lora_target_modules == ["q_proj"] and hp.export == "merged"
    assert Hyperparameters.from_dict({"max_features": 5000.0}, "tfidf").max_features == 5000


@pytest.mark.parametrize(
    ("family", "values", "field"),
    [
        ("encoder", {"epoch": 3}, "epoch"),
        ("encoder", {"epochs": 2.5}, "epochs"),
        ("encoder", {"epochs": 0}, "epochs"),
        ("encoder", {"batch_size": "16"}, "batch_size"),
        ("encoder", {"batch_size": True}, "batch_size"),
        ("encoder", {"learning_rate": 0}, "learning_rate"),
        ("encoder", {"learning_rate": float("nan")}, "learning_rate"),
        ("encoder", {"max_length": 1024}, "max_length"),
        ("encoder", {"warmup_ratio": 1.0}, "warmup_ratio"),
        ("encoder", {"validation_fraction": 0.9}, "validation_fraction"),
        ("encoder", {"validation_fraction": 0.5, "test_fraction": 0.4}, "test_fraction"),
        ("encoder", {"max_grad_norm": -1}, "max_grad_norm"),
        ("encoder", {"precision": "fp8"}, "precision"),
        ("encoder", {"lr_scheduler": "step"}, "lr_scheduler"),
        ("encoder", {"loss": "hinge"}, "loss"),
        ("encoder", {"class_weights": "inverse"}, "class_weights"),
        ("encoder", {"class_weights": {"pop": -1}}, "class_weights"),
        ("encoder", {"class_weights": {"pop": 0, "rock": 0}}, "class_weights"),
        ("encoder", {"focal_alpha": [1, 2]}, "focal_alpha"),
        ("encoder", {"metric_for_best_model": "loss"}, "metric_for_best_model"),
        ("encoder", {"truncation": "middle"}, "truncation"),
        ("encoder", {"lowercase": "upper"}, "lowercase"),
        ("encoder", {"drop_chord_lines": 1}, "drop_chord_lines"),
        ("decoder", {"lora_target_modules": []}, "lora_target_modules"),
        ("decoder", {"lora_target_modules": "q_proj"}, "lora_target_modules"),
        ("decoder", {"export": "gguf"}, "export"),
        ("scratch", {"d_model": 100, "heads": 3}, "d_model"),
        ("scratch", {"tokenizer_model": "wordpiece"}, "tokenizer_model"),
        ("scratch", {"vocab_size": 10}, "vocab_size"),
        ("tfidf", {"char_ngram_min": 4, "char_ngram_max": 3}, "char_ngram_max"),
        ("tfidf", {"C": 0}, "C"),
        ("tfidf", {"classifier": "svm"}, "classifier"),
    ],
)
def test_refuses_unknown_and_invalid_fields_naming_them(family, values, field):
    with pytest.raises(ValueError, match=field):
        Hyperparameters.from_dict(values, family)


@pytest.mark.parametrize(
    ("family", "key", "owner"),
    [
        ("encoder", "lora_r", "decoder family"),
        ("scratch", "gradient_checkpointing", "encoder and decoder families"),
        ("tfidf", "epochs", "encoder, decoder and scratch families"),
        ("tfidf", "loss", "encoder, decoder and scratch families"),
        ("encoder", "C", "tfidf family"),
        ("decoder", "pooling", "scratch family"),
    ],
)
def test_refuses_a_key_of_another_family_naming_its_family(family, key, owner):
    value = Hyperparameters.from_dict({}, "decoder" if key.startswith("lora") else
                                      "tfidf" if key == "C" else "scratch" if key == "pooling" else
                                      "encoder").to_dict()[key]
    with pytest.raises(ValueError, match=f"'{key}' applies to the {owner}, not {family}"):
        Hyperparameters.from_dict({key: value}, family)


def test_label_weights_are_checked_against_the_labels():
    hp = Hyperparameters.from_dict({"class_weights": {"pop": 2.0, "caz": 1.0}})
    with pytest.raises(ValueError, match="'caz'"):
        hp.label_weights("class_weights", ["pop", "rock"])
    assert Hyperparameters.from_dict({"loss": "focal", "focal_alpha": {"pop": 2.0}}).label_weights("focal_alpha", ["pop", "rock"]) == {
        "pop": 2.0}


@pytest.mark.parametrize(
    ("family", "values", "field"),
    [
        # The bounds the API and the worker once kept apart; contracts/hyperparameters.json now holds one each.
        ("encoder", {"seed": 2**31}, "seed"),
        ("scratch", {"d_model": 8, "heads": 1}, "d_model"),
        ("scratch", {"ff_dim": 8}, "ff_dim"),
        ("scratch", {"vocab_size": 250_001}, "vocab_size"),
        ("encoder", {"validation_fraction": 0.4, "test_fraction": 0.3}, "test_fraction"),
        ("encoder", {"focal_alpha": {"pop": 2.0}}, "focal_alpha"),
        ("decoder", {"load_in_4bit": True, "export": "merged"}, "export"),
        ("encoder", {"class_weights": {}}, "class_weights"),
        ("decoder", {"lora_target_modules": ["q_proj\n"]}, "lora_target_modules"),
        ("tfidf", {"max_features": 99}, "max_features"),
    ],
)
def test_one_bound_per_contract_entry(family, values, field):
    with pytest.raises(ValueError, match=field):
        Hyperparameters.from_dict(values, family)


def test_the_highest_values_the_api_takes_are_taken():
    hp = Hyperparameters.from_dict({"seed": 2**31 - 1, "vocab_size": 250_000, "d_model": 16, "heads": 16,
                                    "validation_fraction": 0.5, "test_fraction": 0.1}, "scratch")
    assert (hp.seed, hp.vocab_size, hp.d_model) == (2**31 - 1, 250_000, 16)
