"""`make_opsgenie_on_run_failure_sensor`: page OpsGenie or JSM Operations when a run fails
(like dagster-slack's); the resource's `backend` decides where the alert goes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dagster as dg
from dagster import DefaultSensorStatus, RunFailureSensorContext, SensorDefinition

from .resources import OpsGenieResource, PriorityName


def default_message(context: RunFailureSensorContext) -> str:
    """`Dagster run failed: <job>`, the default alert message."""
    return f'Dagster job "{context.dagster_run.job_name}" failed'


def default_alias(context: RunFailureSensorContext) -> str:
    """One open alert per failing job: repeated failures bump its count instead of paging again."""
    return f"dagster_cache:run_failure:{context.dagster_run.job_name}"


def _description(context: RunFailureSensorContext, base_url: str | None) -> str:
    run = context.dagster_run
    lines = [f"Run {run.run_id} of job {run.job_name} failed."]
    if context.failure_event.message:
        lines.append(f"Error: {context.failure_event.message}")
    if base_url:
        lines.append(f"Run: {base_url.rstrip('/')}/runs/{run.run_id}")
    return "\n".join(lines)


def make_opsgenie_on_run_failure_sensor(
    *,
    opsgenie: OpsGenieResource | None = None,
    name: str | None = None,
    monitored_jobs: Sequence[Any] | None = None,
    monitor_all_code_locations: bool = False,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
    message_fn: Callable[[RunFailureSensorContext], str] = default_message,
    alias_fn: Callable[[RunFailureSensorContext], str] = default_alias,
    priority: PriorityName | None = None,
    tags: Sequence[str] = (),
    webserver_base_url: str | None = None,
    minimum_interval_seconds: int | None = None,
) -> SensorDefinition:
    """A run failure sensor that opens an alert per failing job, in OpsGenie or, with
    `OpsGenieResource(backend="jsm")`, in Jira Service Management Operations.

    Pass `opsgenie=` (an OpsGenieResource), or leave it out and bind one in Definitions under
    the resource key "opsgenie".
    """
    decorate = dg.run_failure_sensor(
        name=name or "opsgenie_on_run_failure",
        monitored_jobs=monitored_jobs,
        monitor_all_code_locations=monitor_all_code_locations,
        default_status=default_status,
        minimum_interval_seconds=minimum_interval_seconds,
        description="Opens an OpsGenie / JSM Operations alert when a monitored run fails.",
    )

    def alert(context: RunFailureSensorContext, resource: OpsGenieResource) -> None:
        run = context.dagster_run
        sent = resource.create_alert(
            message_fn(context),
            alias_fn(context),
            description=_description(context, webserver_base_url),
            priority=priority,
            tags=("dagster", *tags),
            details={"run_id": run.run_id, "job_name": run.job_name},
            source="dagster",
        )
        context.log.info(f"{resource.service} alert for failed run {run.run_id}: "
                         f"{'sent' if sent else 'not sent'}")

    if opsgenie is not None:
        configured = opsgenie

        def with_given(context: RunFailureSensorContext) -> None:
            alert(context, configured)

        return decorate(with_given)

    def with_bound(context: RunFailureSensorContext, opsgenie: OpsGenieResource) -> None:
        alert(context, opsgenie)

    return decorate(with_bound)
