"""Serving movierec models, in rooms by role: the contract a pushed model keeps (contract.py), the
deploy files for TF Serving (deploy.py), the clients (client.py, rest_client.py) and the stand-in
model server (model_server/). tests/unit/test_layout.py checks who may import whom."""
