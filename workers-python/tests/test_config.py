import pytest

from makam_worker.training.config import Hyperparameters


def test_defaults_are_documented_values():
    hp = Hyperparameters.from_dict({})
    assert hp.to_dict() == {
        "epochs": 3, "batch_size": 16, "learning_rate": 5e-5, "max_length": 128, "seed": 42,
        "warmup_ratio": 0.1, "weight_decay": 0.01, "max_grad_norm": 1.0, "validation_fraction": 0.1,
    }


def test_integral_floats_from_a_struct_become_ints():
    hp = Hyperparameters.from_dict({"epochs": 3.0, "batch_size": 8.0, "learning_rate": 1, "max_length": 64.0})
    assert (hp.epochs, hp.batch_size, hp.max_length) == (3, 8, 64)
    assert isinstance(hp.epochs, int) and isinstance(hp.learning_rate, float)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"epoch": 3}, "epoch"),
        ({"epochs": 2.5}, "epochs"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": "16"}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"max_length": 1024}, "max_length"),
        ({"warmup_ratio": 1.0}, "warmup_ratio"),
        ({"validation_fraction": 0.9}, "validation_fraction"),
        ({"max_grad_norm": -1}, "max_grad_norm"),
    ],
)
def test_refuses_unknown_and_invalid_fields_naming_them(values, field):
    with pytest.raises(ValueError, match=field):
        Hyperparameters.from_dict(values)
