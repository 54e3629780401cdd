"""Kubernetes API access: watch-fed caches for admission facts, and registration.

The only wing that imports ``kubernetes`` (SPEC §6): ``client`` (loading the API
client, shared constants, the metrics seam), ``informer`` (``WatchCache``),
``objects`` (what is kept of a namespace or service account), ``facts``
(``KubeFacts``), ``webhooks`` (the webhook configurations as plain dicts, pure),
``apply`` (``register`` / ``unregister``), and for audit (SPEC §13) ``pods`` (paged
pod lists, one-shot facts) and ``reports`` (PolicyReports). It may import
``webhook.policy``, ``webhook.rules`` and ``webhook.admission``; never aiohttp or
the ``serving`` wing. Two halves:

**Facts.** ``facts.KubeFacts`` answers namespace labels and service accounts
from two watch-fed caches (``informer.WatchCache``: list, watch, relist, backoff;
see its docstring), with one direct GET within a small budget on a miss.

**Registration.** ``apply.register`` / ``apply.unregister`` apply the Mutating- and
ValidatingWebhookConfiguration that ``kube.webhooks`` builds.

Errors: the caches log and retry forever (counted through ``KubeMetrics``);
lookups turn every failure into a ``ServiceAccountFact``; ``register`` and
``unregister`` let ``kubernetes.client.exceptions.ApiException`` (and
connection errors) propagate for the CLI to report.
"""
