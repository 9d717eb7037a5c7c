"""Trainer hyperparameters: a plain dataclass, so config code can use it without TensorFlow."""
import dataclasses
from typing import Tuple

# The Trainer's custom_config key holding these (beside the pipeline's code digest).
HYPERPARAMETERS = "hyperparameters"
# How `recommend` ranks (models/retrieval/history_head.py); here so configs are checked without TensorFlow.
RETRIEVALS = ("rating", "history")


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
    """What the Trainer is tuned by; passed from pipeline config through `custom_config`."""
    model: str = "mf"            # mf | neumf | mf_autorec (see model.py)
    embedding_dim: int = 32
    epochs: int = 10
    batch_size: int = 256
    learning_rate: float = 0.003
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
    # How `recommend` ranks: history (EASE on the user's history, models/retrieval/history_head.py) | rating (by
    # predicted rating: niche films with a few high ratings first, below "most popular").
    retrieval: str = "history"
    retrieval_l2: float = 500.0  # history: EASE's ridge penalty on the item-item weights
    retrieval_popularity_l2: float = 0.0  # history: + this x the movie's rating count (EDLAE)
    retrieval_popularity_weight: float = 0.0  # history: + this x popularity in known users' scores
    retrieval_dim: int = 64      # history: rank of the ratings matrix the head is fitted on

    def __post_init__(self):
        if self.retrieval not in RETRIEVALS:
            raise ValueError(f"unknown retrieval {self.retrieval!r}; choose one of {', '.join(RETRIEVALS)}")
        if self.retrieval_dim < 1:
            raise ValueError(f"retrieval_dim must be at least 1, not {self.retrieval_dim}")
        if self.retrieval_l2 <= 0:
            raise ValueError(f"retrieval_l2 must be positive, not {self.retrieval_l2}")
        if self.retrieval_popularity_l2 < 0:
            raise ValueError(f"retrieval_popularity_l2 must not be negative, not {self.retrieval_popularity_l2}")
        if self.retrieval_popularity_weight < 0:
            raise ValueError(f"retrieval_popularity_weight must not be negative, not {self.retrieval_popularity_weight}")

    @classmethod
    def from_dict(cls, values) -> "Hyperparameters":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown hyperparameters: {sorted(unknown)}; known: {sorted(known)}")
        if "mlp_layers" in values:
            values = {**values, "mlp_layers": tuple(values["mlp_layers"])}
        return cls(**values)
