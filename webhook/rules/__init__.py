"""Pure policy rules: one module per rule family, each ``(pod, policy, facts) -> Outcome``."""
