"""Trainer hyperparameters: a plain dataclass, so config code can use it without TensorFlow."""
import dataclasses
from typing import Tuple

# The Trainer's custom_config key holding these (beside the pipeline's code digest).
HYPERPARAMETERS = "hyperparameters"
# The rating model's variants (models/rating/model.py) and how `recommend` ranks (models/retrieval/history_head.py);
# here so configs are checked without TensorFlow.
MODELS = ("mf", "neumf", "mf_autorec")
RETRIEVALS = ("rating", "history")
LEARNING_RATE_DECAYS = ("constant", "cosine")


def is_number(value) -> bool:
    """YAML's true/false are Python bools, which are ints: a setting of `true` is not the number 1."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check(section: str, settings, key: str, ok, rule: str) -> None:
    """Raises ValueError "<section>.<key>: must be <rule>, got <value>" unless ok(value): the one
    wording of every settings error (pipeline/configs.py uses it too), naming the key as the
    settings file spells it."""
    value = getattr(settings, key)
    if not ok(value):
        shown = list(value) if isinstance(value, tuple) else value
        raise ValueError(f"{section}.{key}: must be {rule}, got {shown!r}")


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
    """What the Trainer is tuned by; passed from pipeline config through `custom_config`."""
    model: str = "mf"            # mf | neumf | mf_autorec (see model.py)
    embedding_dim: int = 32
    epochs: int = 10
    batch_size: int = 256
    learning_rate: float = 0.003
    # constant | cosine: Adam's step falls to 0 over the fit's steps (tf.keras CosineDecay), so the
    # weights kept are not one noisy step's. It matters where each user's row is in few batches of an
    # epoch (configs/synthetic-scale.yaml: at 10M ratings a constant step ends above bias-only's RMSE).
    learning_rate_decay: str = "constant"
    l2: float = 0.1              # on the user / movie vectors looked up in a batch
    bias_l2: float = 0.0         # on the biases looked up in a batch
    seed: int = 0
    mlp_layers: Tuple[int, ...] = (64, 32)   # neumf
    mlp_l2: float = 1e-4
    side_features: bool = False  # add genre/decade and age/gender/occupation vectors to the IDs
    side_l2: float = 0.1         # on the side-feature vectors looked up in a batch
    autorec_hidden: int = 500    # mf_autorec: the AutoRec part and its share of the blend
    autorec_l2: float = 300.0
    autorec_learning_rate: float = 6e-4
    autorec_epochs: int = 100
    autorec_batch_size: int = 64
    autorec_ema: float = 0.99
    blend_weight: float = 0.65
    # How `recommend` ranks: history (EASE on the user's history, retrieval/history_head.py) | rating (by
    # predicted rating: niche films with a few high ratings first, below "most popular").
    retrieval: str = "history"
    retrieval_l2: float = 500.0  # history: EASE's ridge penalty on the item-item weights
    retrieval_popularity_l2: float = 0.0  # history: + this x the movie's rating count (EDLAE)
    retrieval_popularity_weight: float = 0.0  # history: + this x popularity in known users' scores
    retrieval_dim: int = 64      # history: rank of the ratings matrix the head is fitted on
    retrieval_recency_weight: float = 0.0  # history: + this x recent popularity in known users' scores
    retrieval_recency_days: float = 30.0   # history: "recent" = rated within this many days of the newest rating
    retrieval_popularity_discount: float = 0.0  # history: a movie's scores / (its rating count + 1) ^ this

    def __post_init__(self):
        """Every setting checked when the config loads (`movierec config` and `run` fail on it, naming
        the key), not minutes into a run when the Trainer builds the model."""
        check("hyperparameters", self, "model", lambda v: v in MODELS, f"one of {', '.join(MODELS)}")
        check("hyperparameters", self, "retrieval", lambda v: v in RETRIEVALS, f"one of {', '.join(RETRIEVALS)}")
        check("hyperparameters", self, "learning_rate_decay", lambda v: v in LEARNING_RATE_DECAYS,
              f"one of {', '.join(LEARNING_RATE_DECAYS)}")
        for key in ("embedding_dim", "epochs", "batch_size", "autorec_hidden", "autorec_epochs",
                    "autorec_batch_size", "retrieval_dim"):
            check("hyperparameters", self, key, is_count, "an integer of at least 1")
        check("hyperparameters", self, "seed", lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer")
        check("hyperparameters", self, "mlp_layers", lambda v: isinstance(v, tuple) and all(map(is_count, v)),
              "a list of integers of at least 1")
        check("hyperparameters", self, "side_features", lambda v: isinstance(v, bool), "true or false")
        for key in ("learning_rate", "autorec_learning_rate", "retrieval_l2", "retrieval_recency_days"):
            check("hyperparameters", self, key, lambda v: is_number(v) and v > 0, "positive")
        for key in ("l2", "bias_l2", "mlp_l2", "side_l2", "autorec_l2", "retrieval_popularity_l2",
                    "retrieval_popularity_weight", "retrieval_recency_weight", "retrieval_popularity_discount"):
            check("hyperparameters", self, key, lambda v: is_number(v) and v >= 0, "0 or more")
        check("hyperparameters", self, "blend_weight", lambda v: is_number(v) and 0 <= v <= 1, "in [0, 1]")
        check("hyperparameters", self, "autorec_ema", lambda v: is_number(v) and 0 <= v < 1, "in [0, 1)")

    @classmethod
    def from_dict(cls, values) -> "Hyperparameters":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown hyperparameters: {sorted(unknown)}; known: {sorted(known)}")
        if "mlp_layers" in values:
            values = {**values, "mlp_layers": tuple(values["mlp_layers"])}
        return cls(**values)
