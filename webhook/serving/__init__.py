"""The HTTPS shell: the aiohttp app (``app``: routes, guards, probes, metrics endpoint),
the process runner (``runner``: policy and certificate watchers, SIGTERM sequence,
workers), serving certificates with rotation (``tls``), Prometheus collectors
(``metrics``), the decision log (``logs``) and the serve settings (``settings``).

The only wing that imports aiohttp and prometheus_client. It may import the wings
below it (``admission``, ``rules``, ``policy``), ``webhook.certs`` for the development
certificate, and ``webhook.kube`` only where the runner builds the facts source.
"""
