"""scheduler_client.Client: one method per API call, typed answers, one exception type."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from scheduler_client.models import (
    AuditEntry,
    BulkResult,
    Job,
    JobSpec,
    Message,
    Page,
    Preview,
    QueueStats,
    Run,
)
from scheduler_client.transport import RetryPolicy, Transport

T = TypeVar("T")
Params = list[tuple[str, Any]]
KEY_HEADER = "Idempotency-Key"


def _params(**values: Any) -> Params:
    """Query parameters, those given; a list value repeats its name (label=a&label=b)."""
    out: Params = []
    for name, value in values.items():
        if value is None:
            continue
        for one in value if isinstance(value, list | tuple) else [value]:
            out.append((name, str(one).lower() if isinstance(one, bool) else one))
    return out


def _label_filters(labels: Mapping[str, str | None] | Sequence[str] | None) -> list[str] | None:
    """{"team": "billing", "tier": None} (any value) or ["team:billing", "tier"]."""
    if labels is None:
        return None
    if isinstance(labels, Mapping):
        return [key if value is None else f"{key}:{value}" for key, value in labels.items()]
    return list(labels)


def _id(value: str) -> str:
    return quote(str(value), safe="")


class Client:
    """A client of one Scheduler service.

    `url`: where it answers (http://127.0.0.1:8000); `api_key`: sent as a bearer token.
    Failed calls raise ProblemError; 429, 503 and connection failures are retried with
    backoff first (see scheduler_client.transport for which requests may be sent again).
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"User-Agent": "scheduler-client/0.1"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = http or httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self._timeout = timeout
        policy = retry or RetryPolicy()
        self._transport = (
            Transport(self._http, policy, sleep) if sleep else Transport(self._http, policy)
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- the plumbing ------------------------------------------------------------------

    def _call(self, method: str, path: str, *, safe: bool, body: Any = None, **options: Any) -> Any:
        response = self._transport.request(method, path, safe=safe, json=body, **options)
        return response.json() if response.content else None

    def _page(self, path: str, params: Params | None, parse: Callable[[Any], T]) -> Page[T]:
        # None for a next link: it carries its query (httpx would drop it for an empty one).
        response = self._transport.request("GET", path, safe=True, params=params or None)
        next_link = response.links.get("next", {}).get("url")
        return Page([parse(item) for item in response.json()], next_link)

    def _all(self, path: str, params: Params, parse: Callable[[Any], T]) -> Iterator[T]:
        """Every item of a list, a page at a time, following the Link header."""
        page = self._page(path, params, parse)
        while True:
            yield from page.items
            if page.next_url is None:
                return
            page = self._page(page.next_url, None, parse)

    def _create_key(self, key: str | None) -> dict[str, str]:
        # One key for every attempt of this call: a retry after a lost answer creates nothing.
        return {KEY_HEADER: key or str(uuid.uuid4())}

    # -- jobs --------------------------------------------------------------------------

    def _job_filters(self, **filters: Any) -> Params:
        labels = _label_filters(filters.pop("labels", None))
        return _params(**filters, label=labels)

    def list_jobs(
        self,
        *,
        status: str | None = None,
        recurring: str | None = None,
        target: str | None = None,
        q: str | None = None,
        labels: Mapping[str, str | None] | Sequence[str] | None = None,
        sort: str | None = None,
        limit: int | None = None,
    ) -> Iterator[Job]:
        """Every job matching the filters, fetched `limit` at a time (a page each)."""
        params = self._job_filters(
            status=status, recurring=recurring, target=target, q=q, labels=labels, sort=sort,
            limit=limit,
        )  # fmt: skip
        return self._all("/schedules", params, Job.from_api)

    def jobs_page(
        self, *, limit: int | None = None, cursor: str | None = None, **filters: Any
    ) -> Page[Job]:
        """One page of jobs (list_jobs's filters); Page.next_url for the next."""
        params = self._job_filters(limit=limit, cursor=cursor, **filters)
        return self._page("/schedules", params, Job.from_api)

    def next_jobs_page(self, page: Page[Job]) -> Page[Job] | None:
        return self._page(page.next_url, None, Job.from_api) if page.next_url else None

    def get_job(self, job_id: str) -> Job:
        return Job.from_api(self._call("GET", f"/schedules/{_id(job_id)}", safe=True))

    def create_job(
        self, spec: JobSpec | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> Job:
        headers = self._create_key(idempotency_key)
        return Job.from_api(self._call("POST", "/schedules", safe=True, body=spec, headers=headers))

    def create_jobs(
        self, specs: Sequence[JobSpec | Mapping[str, Any]], *, idempotency_key: str | None = None
    ) -> list[Job]:
        """Up to MAX_BATCH_JOBS (1,000) jobs in one call: all of them, or none (an error
        names the job at fault as jobs.<index>.<field>)."""
        headers = self._create_key(idempotency_key)
        body = {"jobs": list(specs)}
        answer = self._call("POST", "/schedules:batch", safe=True, body=body, headers=headers)
        return [Job.from_api(job) for job in answer["jobs"]]

    def update_job(self, job_id: str, spec: JobSpec | Mapping[str, Any]) -> Job:
        """Replace a job (PUT): fields left out take their defaults."""
        return Job.from_api(self._call("PUT", f"/schedules/{_id(job_id)}", safe=True, body=spec))

    def delete_job(self, job_id: str) -> Job:
        """Delete a job and its runs; answers the job as it was."""
        return Job.from_api(self._call("DELETE", f"/schedules/{_id(job_id)}", safe=True))

    def pause_job(self, job_id: str, *, note: str | None = None, until: str | None = None) -> Job:
        body = {k: v for k, v in {"note": note, "until": until}.items() if v is not None}
        path = f"/schedules/{_id(job_id)}/pause"
        return Job.from_api(self._call("POST", path, safe=True, body=body))

    def resume_job(self, job_id: str) -> Job:
        return Job.from_api(self._call("POST", f"/schedules/{_id(job_id)}/resume", safe=True))

    def run_job(self, job_id: str) -> Run:
        """Fire once, now. Not sent again after a lost answer: that would fire twice."""
        return Run.from_api(self._call("POST", f"/schedules/{_id(job_id)}/run", safe=False))

    def rotate_secret(self, job_id: str) -> Job:
        """A webhook's new signing secret first, the others kept (shown in this answer)."""
        path = f"/schedules/{_id(job_id)}/rotate-secret"
        return Job.from_api(self._call("POST", path, safe=False))

    def drop_old_secrets(self, job_id: str) -> Job:
        path = f"/schedules/{_id(job_id)}/drop-old-secrets"
        return Job.from_api(self._call("POST", path, safe=True))

    def _bulk(
        self, action: str, job_ids: Sequence[str] | None, labels: Mapping[str, str] | None
    ) -> BulkResult:
        if (job_ids is None) == (labels is None):
            raise ValueError("give job_ids or labels, one of the two")
        body = {"jobIds": list(job_ids)} if job_ids is not None else {"labels": dict(labels or {})}
        answer = self._call("POST", f"/schedules:{action}", safe=action != "run", body=body)
        return BulkResult.from_api(answer)

    def pause_jobs(
        self, job_ids: Sequence[str] | None = None, *, labels: Mapping[str, str] | None = None
    ) -> BulkResult:
        return self._bulk("pause", job_ids, labels)

    def resume_jobs(
        self, job_ids: Sequence[str] | None = None, *, labels: Mapping[str, str] | None = None
    ) -> BulkResult:
        return self._bulk("resume", job_ids, labels)

    def run_jobs(
        self, job_ids: Sequence[str] | None = None, *, labels: Mapping[str, str] | None = None
    ) -> BulkResult:
        return self._bulk("run", job_ids, labels)

    def delete_jobs(
        self, job_ids: Sequence[str] | None = None, *, labels: Mapping[str, str] | None = None
    ) -> BulkResult:
        return self._bulk("delete", job_ids, labels)

    def preview(
        self,
        recurring: str = "none",
        *,
        at: str | None = None,
        minute: int | None = None,
        cron: str | None = None,
        interval: int | None = None,
        timezone: str | None = None,
        start_at: str | None = None,
        end_at: str | None = None,
        max_runs: int | None = None,
        rrule: str | None = None,
        after: str | None = None,
        count: int | None = None,
        explain: bool = False,
    ) -> Preview:
        """The next times of a rule after `after` (default now), and the rule in words;
        `explain`: each time's notes (a DST shift, …) in words too."""
        params = _params(
            recurring=recurring, at=at, minute=minute, cron=cron, interval=interval,
            timezone=timezone, startAt=start_at, endAt=end_at, maxRuns=max_runs, rrule=rrule,
            after=after, count=count, explain=explain or None,
        )  # fmt: skip
        return Preview.from_api(self._call("GET", "/schedules/preview", safe=True, params=params))

    def preview_spec(
        self,
        spec: JobSpec | Mapping[str, Any],
        *,
        after: str | None = None,
        count: int | None = None,
        explain: bool = False,
    ) -> Preview:
        """The next times of a whole job's timing, as create_job takes it (its exclusions,
        daylight-saving policy and window too); nothing is stored."""
        extra = {"after": after, "count": count, "explain": explain or None}
        body = dict(spec) | {name: value for name, value in extra.items() if value is not None}
        return Preview.from_api(self._call("POST", "/schedules/preview", safe=True, body=body))

    def preview_job(
        self, job_id: str, *, count: int | None = None, explain: bool = False
    ) -> Preview:
        """A stored job's next times."""
        params = _params(count=count, explain=explain or None)
        path = f"/schedules/{_id(job_id)}/preview"
        return Preview.from_api(self._call("GET", path, safe=True, params=params))

    # -- runs --------------------------------------------------------------------------

    def list_runs(
        self,
        *,
        job_id: str | None = None,
        status: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> Iterator[Run]:
        """Runs newest first: one job's, or every job's."""
        path = f"/schedules/{_id(job_id)}/runs" if job_id else "/runs"
        params = _params(status=status, since=since, until=until, limit=limit)
        return self._all(path, params, Run.from_api)

    def get_run(self, run_id: str) -> Run:
        return Run.from_api(self._call("GET", f"/runs/{_id(run_id)}", safe=True))

    def retry_run(self, run_id: str) -> Run:
        """A dead run gets a fresh set of attempts (a 409 problem if it is not dead)."""
        return Run.from_api(self._call("POST", f"/runs/{_id(run_id)}/retry", safe=True))

    # -- the built-in queue ------------------------------------------------------------

    def receive(
        self,
        queue: str = "default",
        *,
        max_messages: int = 10,
        visibility_timeout: float = 30.0,
        wait: float = 0.0,
    ) -> list[Message]:
        """Up to max_messages, hidden from others for visibility_timeout seconds; waits up
        to `wait` seconds (a long poll) for one to come."""
        body = {"max": max_messages, "visibilityTimeout": visibility_timeout, "wait": wait}
        answer = self._call(
            "POST", f"/queues/{_id(queue)}/receive", safe=False, body=body,
            timeout=self._timeout + wait,
        )  # fmt: skip
        return [Message.from_api(m) for m in answer["messages"]]

    def ack(self, queue: str, receipts: Sequence[str]) -> int:
        """Delete received messages; answers how many were still held by these receipts."""
        body = {"receipts": list(receipts)}
        return int(self._call("POST", f"/queues/{_id(queue)}/ack", safe=True, body=body)["deleted"])

    def extend(self, queue: str, receipts: Sequence[str], visibility_timeout: float) -> int:
        """Keep received messages hidden for visibility_timeout seconds from now."""
        body = {"receipts": list(receipts), "visibilityTimeout": visibility_timeout}
        answer = self._call("POST", f"/queues/{_id(queue)}/extend", safe=True, body=body)
        return int(answer["extended"])

    def queue_stats(self, queue: str = "default") -> QueueStats:
        return QueueStats.from_api(self._call("GET", f"/queues/{_id(queue)}", safe=True))

    # -- the rest ----------------------------------------------------------------------

    def list_audit(
        self, *, job_id: str | None = None, limit: int | None = None
    ) -> Iterator[AuditEntry]:
        return self._all("/audit", _params(jobId=job_id, limit=limit), AuditEntry.from_api)

    def health(self) -> dict[str, Any]:
        return dict(self._call("GET", "/readyz", safe=True))
