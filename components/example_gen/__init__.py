"""RatingsExampleGen: typed ratings CSVs to tf.Examples, with the side tables joined."""
