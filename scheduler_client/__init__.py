"""A Python client of the Scheduler service (needs only httpx, not the server's packages).

from scheduler_client import Client
with Client("http://127.0.0.1:8000", api_key=None) as client:
    job = client.create_job({"payload": "hello", "recurring": "cron", "cron": "0 9 * * *"})
    for run in client.list_runs(job_id=job.job_id):
        print(run.status)
"""

from scheduler_client.client import Client
from scheduler_client.consumer import Consumer
from scheduler_client.errors import FieldError, ProblemError
from scheduler_client.models import (
    AuditEntry,
    BulkResult,
    Job,
    JobSpec,
    Message,
    Page,
    Preview,
    PreviewTime,
    QueueStats,
    Run,
)
from scheduler_client.transport import RetryPolicy

__all__ = [
    "AuditEntry",
    "BulkResult",
    "Client",
    "Consumer",
    "FieldError",
    "Job",
    "JobSpec",
    "Message",
    "Page",
    "Preview",
    "PreviewTime",
    "ProblemError",
    "QueueStats",
    "RetryPolicy",
    "Run",
]
