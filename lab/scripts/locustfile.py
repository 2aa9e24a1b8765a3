"""Locust users for scripts/loadtest.py: half request /, half /visits, back to back (no think time).

Every request's status (or connection error) and time is recorded per path and written as JSON to the
file named by $LOADTEST_RECORD when locust quits: exact counts per status, which locust's own stats
don't keep (they count failures, not statuses).
"""

import json
import os

from locust import FastHttpUser, constant, events, task

PATHS = ("/", "/visits")
records = {path: {"statuses": {}, "errors": 0, "times_s": []} for path in PATHS}


@events.request.add_listener
def record(name, response_time, response=None, exception=None, **_):
    """One request: its status, or an error when no HTTP answer came back."""
    entry = records.setdefault(name, {"statuses": {}, "errors": 0, "times_s": []})
    status = getattr(response, "status_code", 0) or 0
    if status:
        entry["statuses"][str(status)] = entry["statuses"].get(str(status), 0) + 1
    elif exception is not None:
        entry["errors"] += 1
    entry["times_s"].append(response_time / 1000)


@events.quitting.add_listener
def write(**_):
    """Hand the records to loadtest.py."""
    with open(os.environ["LOADTEST_RECORD"], "w", encoding="utf-8") as f:
        json.dump(records, f)


class Root(FastHttpUser):
    wait_time = constant(0)

    @task
    def root(self):
        self.client.get("/", name="/")


class Visits(FastHttpUser):
    wait_time = constant(0)

    @task
    def visits(self):
        self.client.get("/visits", name="/visits")
