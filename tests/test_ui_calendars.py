"""The job form's calendar fields (rule, days off, DST policy), the notes its live preview
shows, and what the job page says."""

from __future__ import annotations

from datetime import UTC, datetime

from flask.testing import FlaskClient

from app.clock import ManualClock
from tests.test_ui_form import saved_job
from tests.test_ui_views import HTMX, create, element, form_data, text, token


def test_a_calendar_rule_with_days_off_and_a_dst_policy_from_the_form(
    client: FlaskClient, clock: ManualClock
) -> None:
    clock.set(datetime(2026, 12, 1, tzinfo=UTC))
    data = form_data(
        client,
        when="rrule",
        at="2026-01-01T00:00",
        rrule="FREQ=MONTHLY;BYMONTHDAY=25;BYHOUR=9;BYMINUTE=0",
        exclude_days="2027-03-25\n2027-04-24 2027-04-26\n",
        exclude_holidays="de-by",
        on_excluded="next-business-day",
        dst_gap="skip",
        dst_repeat="both",
    )
    response = client.post("/ui/jobs/new", data=data)
    job = saved_job(client, response)
    assert job["recurring"] == "rrule" and job["rrule"] == data["rrule"]
    assert job["exclude"] == {"dates": ["2027-03-25"], "ranges": [["2027-04-24", "2027-04-26"]],
                              "holidays": "DE-BY"}  # fmt: skip
    assert job["onExcluded"] == "next-business-day"
    assert job["dst"] == {"gap": "skip", "repeat": "both"}
    assert job["nextRunAt"] == "2026-12-28T08:00:00Z"
    page = text(client.get(response.headers["Location"]))
    assert "FREQ=MONTHLY;BYMONTHDAY=25" in element(page, "job-rrule")
    assert "public holidays in DE-BY" in element(page, "job-exclude")
    assert "moved to the next business day" in element(page, "job-exclude")
    assert "fired at both" in element(page, "job-dst")
    assert "moved here from an excluded day" in element(page, "next-times")
    # The edit form shows what was saved.
    edit = text(client.get(f"/ui/jobs/{job['jobId']}/edit"))
    assert 'value="DE-BY"' in edit and "2027-04-24 2027-04-26" in edit
    assert '<option value="both" selected>' in edit


def test_the_live_preview_notes_a_skipped_day_and_a_dst_shift(
    client: FlaskClient, clock: ManualClock
) -> None:
    clock.set(datetime(2026, 3, 27, 12, tzinfo=UTC))
    data = form_data(client, when="daily", at="2026-03-27T02:30", exclude_days="2026-03-30")
    query = {k: v for k, v in data.items() if k != "csrf_token"}
    html = text(client.get("/ui/jobs/new", query_string=query,
                           headers=HTMX | {"HX-Target": "preview"}))  # fmt: skip
    times = element(html, "preview-times")
    assert "the clocks go forward from 02:00 to 03:00 on 2026-03-29" in times
    assert "skipped" in times and "2026-03-30 is an excluded date" in times


def test_a_bad_rule_or_day_is_named_on_its_field(client: FlaskClient) -> None:
    data = form_data(client, when="rrule", rrule="FREQ=WEEKLY;BYMONTHDAY=3",
                     exclude_days="2026-02-30")  # fmt: skip
    response = client.post("/ui/jobs/new", data=data)
    assert response.status_code == 422
    page = text(response)
    assert "BYMONTHDAY is not allowed with FREQ=WEEKLY" in element(page, "error-rrule")
    wrong_day = form_data(client, when="daily", exclude_days="2026-02-30\n1 2 3")
    assert "one date, or two" in element(text(client.post("/ui/jobs/new", data=wrong_day)),
                                         "error-exclude_days")  # fmt: skip


def test_backfill_from_the_job_page_with_its_count_first(
    client: FlaskClient, clock: ManualClock
) -> None:
    clock.set(datetime(2026, 12, 10, 12, tzinfo=UTC))
    job = create(client, recurring="daily", at="2026-12-01T09:00:00Z", timezone="UTC")
    page = text(client.get(f"/ui/jobs/{job['jobId']}"))
    assert 'id="backfill-job"' in page and 'id="backfill-count"' in page
    span = {"from": "2026-12-01T00:00", "to": "2026-12-05T23:00"}
    counted = text(client.get(f"/ui/jobs/{job['jobId']}/backfill-count", query_string=span,
                              headers=HTMX))  # fmt: skip
    assert "It makes 5 runs: the range holds 5 times, 0 of them with a run already." in counted
    future = text(client.get(f"/ui/jobs/{job['jobId']}/backfill-count",
                             query_string=span | {"to": "2027-01-01T00:00"}))  # fmt: skip
    assert "to must not be in the future" in future
    response = client.post(f"/ui/jobs/{job['jobId']}/backfill",
                           data=span | {"csrf_token": token(client)})  # fmt: skip
    assert response.status_code == 303
    shown = text(client.get(response.headers["Location"]))
    assert "Backfilled 5 runs (0 had one)" in shown
    again = text(client.get(f"/ui/jobs/{job['jobId']}/backfill-count", query_string=span))
    assert "It makes 0 runs" in again
