"""task-pod-webhook: a Kubernetes admission webhook for Airflow task pods."""

__version__ = "0.1.0"
