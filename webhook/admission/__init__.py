"""The admission core: from a parsed AdmissionReview to the response, pure and synchronous.

Owns the wire protocol (``protocol``), the one wiring place of selection, rules and
responses (``decide``), the named response constructors (``responses``), the JSON
Patch emitted from the rules' changes (``patch``), the shape check of every field the
rules read (``shape``) and the seam through which the shell hands in facts about the
cluster (``facts``). It may import ``webhook.rules``, ``webhook.policy`` and
``webhook.jsonio``; never aiohttp, the Kubernetes client, prometheus_client, or the
``serving`` and ``kube`` wings (import-linter contracts in pyproject.toml).
"""
