"""`movierec serve`: a stand-in for tensorflow_model_server 2.16.1 (docs/tf-serving-rules.md).

Its own room in serving/: it reads the contract (serving/contract.py) and nothing else of the
project, and no client imports it, so a client application loads no server code."""
