"""Trainer hyperparameters: a plain dataclass, so config code can use it without TensorFlow."""
import dataclasses


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
    """What the Trainer is tuned by; passed from pipeline config through `custom_config`."""
    embedding_dim: int = 32
    epochs: int = 10
    batch_size: int = 256
    learning_rate: float = 0.003
    l2: float = 0.1
    seed: int = 0

    @classmethod
    def from_dict(cls, values) -> "Hyperparameters":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown hyperparameters: {sorted(unknown)}; known: {sorted(known)}")
        return cls(**values)
