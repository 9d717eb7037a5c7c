"""The rating head: the Keras models (mf, neumf, mf_autorec), their whole-catalogue scores, warm
start, and the bias-only rating baseline the gates compare with."""
