"""What Airflow itself puts on task pods, and so what we must never touch.

Airflow's KubernetesExecutor and KubernetesPodOperator find, adopt and
re-attach to their pods by these labels (KubernetesPodOperator's selector ends
in ``already_checked!=True,!airflow-worker``), so the webhook never adds,
removes or rewrites them, and a policy that would is rejected at load time.
"""

from __future__ import annotations

AIRFLOW_LABEL_KEYS: frozenset[str] = frozenset(
    {
        "dag_id",
        "task_id",
        "run_id",
        "try_number",
        "map_index",
        "airflow-worker",
        "kubernetes_executor",
        "kubernetes_pod_operator",
        "airflow_version",
        "airflow_kpo_in_cluster",
        "already_checked",
        "parent_dag_id",
        "logical_date",
        "execution_date",
        "airflow_executor_done",
        "airflow_pod_revoked",
        "ti_id",  # provider 10.x, when the executor keys tasks by task-instance UUID
    }
)

# Annotations hold the unsanitised values (labels are cut to label syntax);
# the denial message quotes them so the user can find the task.
TASK_IDENTITY_KEYS: tuple[tuple[str, str], ...] = (
    ("dag", "dag_id"),
    ("task", "task_id"),
    ("run", "run_id"),
    ("try", "try_number"),
    ("map_index", "map_index"),
)


def task_identity(annotations: dict[str, str], labels: dict[str, str]) -> list[tuple[str, str]]:
    """``[(word, value), ...]`` for the Airflow task the pod runs, annotations first."""
    found: list[tuple[str, str]] = []
    for word, key in TASK_IDENTITY_KEYS:
        value = annotations.get(key)
        if value is None:
            value = labels.get(key)
        if isinstance(value, str) and value != "" and not (key == "map_index" and value == "-1"):
            found.append((word, value))
    return found
