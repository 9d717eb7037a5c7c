"""tf.Transform preprocessing: the user and movie ID vocabularies.

Each ID becomes an index into a vocabulary written as a named file (`user_id_vocab`,
`movie_id_vocab`) ordered by frequency; IDs not seen in training map to the one OOV bucket,
index == vocabulary size, which the model treats as "unknown". The movie title passes through
(empty when unknown) so the Trainer can put titles into the exported model's catalogue.
"""
import tensorflow_transform as tft

from components import features

OOV_BUCKETS = 1


def preprocessing_fn(inputs):
    """Maps raw ID strings to vocabulary indices and passes the label through."""
    outputs = {
        features.transformed_name(key): tft.compute_and_apply_vocabulary(
            inputs[key], num_oov_buckets=OOV_BUCKETS, vocab_filename=features.vocabulary_name(key))
        for key in features.ID_FEATURES
    }
    outputs[features.transformed_name(features.LABEL_KEY)] = inputs[features.LABEL_KEY]
    outputs[features.transformed_name(features.TITLE)] = tft.sparse_tensor_to_dense_with_shape(
        inputs[features.TITLE], [None, 1], default_value="")
    return outputs
