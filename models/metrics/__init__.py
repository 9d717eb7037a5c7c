"""List metrics: full-catalogue top-K NDCG, recall, precision, MAP, coverage, and the eval set
every model's lists are scored on."""
