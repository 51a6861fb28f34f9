"""PLS collapsed to weights and a bias predicts exactly what scikit-learn's PLSRegression predicts."""

import numpy as np
import pytest
from sklearn.cross_decomposition import PLSRegression

from nirstream.core.linear_model import LinearModel


@pytest.mark.parametrize("scale", [False, True])
def test_pls_as_a_linear_model_predicts_what_pls_predicts(tecator, scale):
    X, fat, water = tecator.X, tecator.target("fat"), tecator.target("water")
    models = [PLSRegression(n_components=lv, scale=scale).fit(X, y) for lv, y in ((12, fat), (7, water))]
    linear = LinearModel.from_pls(models)
    expected = np.column_stack([m.predict(X).ravel() for m in models])
    np.testing.assert_allclose(linear.predict(X), expected, rtol=1e-9, atol=1e-9)
    assert linear.weights.shape == (X.shape[1], 2) and linear.n_inputs == X.shape[1]


def test_a_linear_model_refuses_weights_that_do_not_fit():
    with pytest.raises(ValueError, match="do not fit together"):
        LinearModel(np.zeros((5, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        LinearModel(np.full((5, 1), np.nan), np.zeros(1))
