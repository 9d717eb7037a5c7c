"""Infra validation (component.py, executor.py); the InfraBlessing it writes is laid out in
components/infra_blessing.py, which the Pusher and the run summary read."""
