"""The policy rules (SPEC §4): one pure module per rule family, each a function of
(pod, policy, facts) returning an ``Outcome`` of changes, violations and warnings.

``base`` holds the shared types and the container visitor, ``registry`` the one
ordered tuple of rules. Rules may import ``webhook.policy`` and ``webhook.jsonio``
only: no I/O, logging, clock or globals.
"""
