"""models/ranking.py: the top-K metrics against lists worked out by hand and against `implicit`'s
own evaluation (implicit/evaluation.pyx, ranking_metrics_at_k), and EASE against its definition."""
import math

import numpy as np
import pytest
import scipy.sparse as sp

from models import ranking

# Three users, K = 4, a catalogue of 10 items. Worked out by hand:
#   A: list [2, 5, 7, 1], relevant {5, 1, 9}: hits at ranks 2 and 4 (1-based).
#      DCG = 1/log2(3) + 1/log2(5); IDCG = 1 + 1/log2(3) + 1/log2(4) (3 relevant, K 4);
#      recall 2/3; precision 2/4; AP = (1/2 + 2/4) / min(4, 3) = 1/3.
#   B: list [0, -, -, -] (only one item was left to recommend), relevant {0}:
#      NDCG 1, recall 1, precision 1/4, AP 1.
#   C: list [4, 3, 6, 8], relevant {1..6}: hits at ranks 1-3.
#      DCG = 1 + 1/log2(3) + 1/2; IDCG = DCG + 1/log2(5) (K caps it at 4); recall 3/6;
#      precision 3/4; AP = (1 + 1 + 1) / min(4, 6) = 3/4.
RECOMMENDED = np.array([[2, 5, 7, 1], [0, -1, -1, -1], [4, 3, 6, 8]])
RELEVANT = [{5, 1, 9}, {0}, {1, 2, 3, 4, 5, 6}]
# Training ratings per item: ranks 1, 2.5, 2.5, 4, 5, 6, 7, 8.5, 8.5, 10 (ties share the mean rank).
TRAIN_COUNTS = np.array([10, 9, 9, 5, 4, 3, 2, 1, 1, 0])
L3, L5 = math.log2(3), math.log2(5)
NDCG = [(1 / L3 + 1 / L5) / (1 + 1 / L3 + 0.5), 1.0, (1 + 1 / L3 + 0.5) / (1 + 1 / L3 + 0.5 + 1 / L5)]
RECALL = [2 / 3, 1.0, 0.5]
PRECISION = [0.5, 0.25, 0.75]
AP = [1 / 3, 1.0, 0.75]


def test_per_user_metrics_match_the_hand_computed_lists():
    scores = ranking.per_user(RECOMMENDED, RELEVANT)
    np.testing.assert_allclose(scores["ndcg"], NDCG)
    np.testing.assert_allclose(scores["recall"], RECALL)
    np.testing.assert_allclose(scores["precision"], PRECISION)
    np.testing.assert_allclose(scores["map"], AP)


def test_overall_and_slices_average_users_and_count_the_catalogue():
    result = ranking.evaluate(RECOMMENDED, RELEVANT, TRAIN_COUNTS, slices=["x", "y", "x"])
    assert list(result) == ["overall", "x", "y"]
    overall = result["overall"]
    assert overall.users == 3
    assert overall.ndcg == pytest.approx(np.mean(NDCG))
    assert overall.recall == pytest.approx(np.mean(RECALL))
    assert overall.precision == pytest.approx(np.mean(PRECISION))
    assert overall.map == pytest.approx(np.mean(AP))
    # Items 2 5 7 1 0 4 3 6 8 recommended: 9 of 10; their popularity ranks sum to 45.
    assert overall.coverage == pytest.approx(0.9)
    assert overall.popularity_rank == pytest.approx(45 / 9)
    x = result["x"]
    assert (x.users, x.ndcg, x.recall) == (2, pytest.approx((NDCG[0] + NDCG[2]) / 2), pytest.approx(7 / 12))
    # Slice x recommends 2 5 7 1 4 3 6 8: 8 items, ranks 2.5+6+8.5+2.5+5+4+7+8.5 = 44.
    assert x.coverage == pytest.approx(0.8)
    assert x.popularity_rank == pytest.approx(44 / 8)
    assert result["y"].as_dict() == {"users": 1, "ndcg": 1.0, "recall": 1.0, "precision": 0.25, "map": 1.0,
                                     "coverage": 0.1, "popularity_rank": 1.0}


def test_popularity_ranks_share_ties():
    np.testing.assert_allclose(ranking.popularity_ranks(TRAIN_COUNTS), [1, 2.5, 2.5, 4, 5, 6, 7, 8.5, 8.5, 10])


def test_top_k_excludes_training_items_breaks_ties_by_index_and_pads():
    scores = np.array([[0.1, 0.9, 0.9, 0.5, 0.2],
                       [1.0, 2.0, 3.0, 4.0, 5.0]])
    exclude = sp.csr_matrix(np.array([[0, 0, 0, 1, 0],
                                      [1, 1, 1, 1, 0]]))
    np.testing.assert_array_equal(ranking.top_k(scores, 3, exclude), [[1, 2, 4], [4, -1, -1]])
    np.testing.assert_array_equal(ranking.top_k(scores, 2), [[1, 2], [4, 3]])


@pytest.mark.parametrize("bad, message", [
    (dict(recommended=np.array([1, 2]), relevant=[{1}]), "must be \\[users, K\\]"),
    (dict(recommended=np.array([[1, 2]]), relevant=[{1}, {2}]), "1 lists but 2 relevant sets"),
    (dict(recommended=np.array([[1, 2], [0, 3]]), relevant=[{1}, set()]), "user row 1 has no relevant items"),
])
def test_malformed_input_is_named(bad, message):
    with pytest.raises(ValueError, match=message):
        ranking.per_user(**bad)


def test_recommended_items_outside_the_catalogue_are_refused():
    with pytest.raises(ValueError, match="index 10 outside the catalogue of 10"):
        ranking.evaluate(np.array([[10, 1]]), [{1}], TRAIN_COUNTS)


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
    scorer = ranking.fit_ease(sp.csr_matrix(x), l2)
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
    train, test = ranking.carve_validation(full, fraction=0.25, seed=1)
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
    fit_part, validation = ranking.carve_validation(train, fraction=0.1, seed=0)
    assert fit_part.nnz + validation.nnz == train.nnz and validation.nnz == round(train.nnz * 0.1)
    assert fit_part.multiply(validation).nnz == 0
    # Temporal carve: the pairs with the largest keys are held out.
    keys = np.arange(train.nnz)
    _, newest = ranking.carve_validation(train, fraction=0.1, order=keys)
    coo = train.tocoo()
    held = set(zip(coo.row[keys >= train.nnz - validation.nnz], coo.col[keys >= train.nnz - validation.nnz]))
    assert set(zip(*newest.nonzero())) == held
    best, tried = ranking.choose(ranking.fit_ease, [{"l2": 0.01}, {"l2": 30.0}, {"l2": 1e6}], fit_part, validation)
    assert best == max(tried, key=lambda pair: pair[1])[0]
    assert len({round(score, 6) for _, score in tried}) > 1
