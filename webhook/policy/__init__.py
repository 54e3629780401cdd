"""The policy: its model, the embedded default, loading with field-path errors.

Owns the policy model (``fields``, ``selectors``, ``families``, ``model``), the
profiles merged over it and selected by namespace labels (``profiles``), loading
(``loading``), the hot-reloaded store (``store``), Kubernetes quantities
(``quantity``), label and glob syntax (``syntax``) and Airflow's own label keys
(``airflow``). The bottom wing: it imports no other part of ``webhook`` but
``webhook.jsonio``.

A policy file is one YAML document. The model is strict: unknown keys, wrong
types and invalid values are all reported at once, each with its field path
(``resources.min.cpu: '12x' is not a valid quantity``). Keys that a file leaves
out take the default policy's values (SPEC §5), so the default policy *is*
this model's defaults.

Cross-field rules keep the product's guarantees true whatever the file says:
a policy can never set or strip Airflow's own labels, and can never allow a
volume type or capability that the Pod Security Standards *restricted* level
forbids (every admitted task pod must pass it).
"""

from webhook.policy.fields import Action
from webhook.policy.loading import (
    PolicyError,
    default_policy,
    dump_policy,
    load_policy,
    load_policy_text,
    policy_from_document,
)
from webhook.policy.model import Policy

__all__ = [
    "Action",
    "Policy",
    "PolicyError",
    "default_policy",
    "dump_policy",
    "load_policy",
    "load_policy_text",
    "policy_from_document",
]
