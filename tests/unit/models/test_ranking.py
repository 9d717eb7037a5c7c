"""models/metrics/ranking.py: the top-K metrics against lists worked out by hand and against `implicit`'s
own evaluation (implicit/evaluation.pyx, ranking_metrics_at_k) in tests/unit/benchmarks/test_ranking_peers.py."""
import math

import numpy as np
import pytest
import scipy.sparse as sp

from models.metrics import ranking

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
