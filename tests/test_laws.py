"""The depth laws: predictions of the constant-filter model, the law expected of a model spec,
and the curves drawn."""

import math

import numpy as np
import pytest

from diffsens.laws import law_curve, model_law, predicted_laws


def test_predicted_laws():
    assert predicted_laws(1, 2, 1) == ("power", {"D": -1.0, "G": 0.5, "R": -1.5})
    assert predicted_laws(2, 3, 1) == ("power", {"D": -1.0, "G": 1.0, "R": -2.0})
    law, exponents = predicted_laws(2, 2, 2)
    assert law == "exponential"
    assert exponents == pytest.approx(
        {"D": -math.log(2), "G": 2 * math.log(2), "R": -3 * math.log(2)}
    )
    law, exponents = predicted_laws(1, 3, 2)
    assert law == "none" and all(math.isnan(v) for v in exponents.values())


def test_model_law():
    assert (
        model_law({"name": "simple_cnn", "dim": 1, "filter_size": 2, "stride": 2})[0]
        == "exponential"
    )
    law, exponents = model_law({"name": "simple_cnn", "filter_size": 3})
    assert law == "power" and exponents == {"D": -1.0, "G": 1.0, "R": -2.0}
    law, exponents = model_law({"name": "simple_cnn", "pooling": "max"})
    assert law == "exponential" and np.isnan(exponents["D"])
    assert model_law({"name": "vgg11"})[0] == "none"


def test_law_curves():
    k = np.array([1.0, 2.0, 4.0])
    np.testing.assert_allclose(law_curve(k, -1.5, "power"), [1.0, 2**-1.5, 4**-1.5])
    np.testing.assert_allclose(law_curve(k, math.log(0.5), "exponential"), [0.5, 0.25, 1 / 16])
    with pytest.raises(ValueError, match="law must be one of"):
        law_curve(k, 1.0, "none")
