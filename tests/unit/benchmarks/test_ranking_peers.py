"""benchmarks/ranking_peers.py: dense EASE against its closed form solved column by column, lists of an
`implicit` model scored as `implicit`'s own evaluation scores them, and the settings search."""
import numpy as np
import pytest
import scipy.sparse as sp

from benchmarks import ranking_peers
from models.metrics import ranking


def _random_interactions(seed=0, users=60, items=40, density=0.15):
    rng = np.random.default_rng(seed)
    # Popularity skew so that lists differ from random.
    p = np.minimum(1.0, density * 3 * rng.power(0.5, size=items))
    dense = rng.random((users, items)) < p
    return sp.csr_matrix(dense.astype(np.float32))


def test_ease_weights_solve_each_items_ridge_regression_with_itself_left_out():
    """Steck 2019, eq. 1: B minimises |X - XB|^2 + l2 |B|^2 with diag(B) = 0, so each column j
    is the ridge regression of item j on the other items; solved here column by column."""
    x = _random_interactions().toarray().astype(np.float64)
    l2 = 5.0
    scorer = ranking_peers.fit_ease(sp.csr_matrix(x), l2)
    b = np.zeros((x.shape[1], x.shape[1]))
    for j in range(x.shape[1]):
        others = np.delete(np.arange(x.shape[1]), j)
        xo = x[:, others]
        b[others, j] = np.linalg.solve(xo.T @ xo + l2 * np.eye(len(others)), xo.T @ x[:, j])
    np.testing.assert_allclose(scorer(np.arange(len(x))), x @ b, atol=1e-8)


def test_metrics_of_an_implicit_model_agree_with_implicits_own_evaluation():
    """implicit/evaluation.pyx, ranking_metrics_at_k: same NDCG and MAP definitions (IDCG and
    AP's divisor over min(K, |R|)); its precision is pooled, sum(hits) / sum(min(K, |R|))."""
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.evaluation import ranking_metrics_at_k
    full = _random_interactions(seed=1, users=80, items=50, density=0.3)
    train, test = ranking_peers.carve_validation(full, fraction=0.25, seed=1)
    model = AlternatingLeastSquares(factors=4, iterations=5, random_state=0)
    model.fit(train, show_progress=False)
    theirs = ranking_metrics_at_k(model, train, test, K=10, show_progress=False)

    users, relevant = ranking.relevant_lists(test)
    scores = np.asarray(model.user_factors)[users] @ np.asarray(model.item_factors).T
    lists = ranking.top_k(scores, 10, train[users])
    ours = ranking.evaluate(lists, relevant, np.asarray(train.sum(axis=0)).ravel())["overall"]
    per_user = ranking.per_user(lists, relevant)
    pooled = (per_user["precision"] * 10).sum() / sum(min(10, len(r)) for r in relevant)
    assert ours.ndcg == pytest.approx(theirs["ndcg"])
    assert ours.map == pytest.approx(theirs["map"])
    assert pooled == pytest.approx(theirs["precision"])


def test_validation_is_carved_from_training_and_the_best_setting_is_chosen():
    train = _random_interactions(seed=2, users=120, items=60, density=0.2)
    fit_part, validation = ranking_peers.carve_validation(train, fraction=0.1, seed=0)
    assert fit_part.nnz + validation.nnz == train.nnz and validation.nnz == round(train.nnz * 0.1)
    assert fit_part.multiply(validation).nnz == 0
    # Temporal carve: the pairs with the largest keys are held out.
    keys = np.arange(train.nnz)
    _, newest = ranking_peers.carve_validation(train, fraction=0.1, order=keys)
    coo = train.tocoo()
    held = set(zip(coo.row[keys >= train.nnz - validation.nnz], coo.col[keys >= train.nnz - validation.nnz]))
    assert set(zip(*newest.nonzero())) == held
    best, tried = ranking_peers.choose(ranking_peers.fit_ease, [{"l2": 0.01}, {"l2": 30.0}, {"l2": 1e6}],
                                       fit_part, validation)
    assert best == max(tried, key=lambda pair: pair[1])[0]
    assert len({round(score, 6) for _, score in tried}) > 1
