"""The job list: every background job and cron, as plain data (names are the contract between
the API that enqueues and the worker that runs)."""

from __future__ import annotations

from typing import Any

from activation.audiences.computation import compute_audience
from activation.audiences.emit import run_audience
from activation.audiences.schedule import enqueue_due_audiences
from activation.audiences.stream_jobs import stream_audiences, sweep_audience_windows
from activation.connections.delivery import deliver_events
from activation.connections.reader import forward_events
from activation.connections.replay import replay_events
from activation.crm.pull import pull_crm_source, schedule_crm_pulls
from activation.identity.jobs import identity_restitch, identity_stitch
from activation.maintenance import worker_heartbeat
from activation.privacy.consent_states import backfill_consent_states
from activation.privacy.deletion import privacy_delete
from activation.privacy.export import privacy_export
from activation.privacy.retention import expire_rejected_events, resume_privacy_requests
from activation.profiles_api.documents import ensure_profile_documents, rebuild_profile_documents
from activation.sync.engine import sync_destination
from activation.sync.schedule import schedule_syncs
from magpie.worker import CronSpec, JobFunction, JobSet


def job_set(ctx: dict[str, Any]) -> JobSet:
    functions: list[JobFunction] = [
        worker_heartbeat,
        compute_audience,
        run_audience,
        enqueue_due_audiences,
        sync_destination,
        schedule_syncs,
        identity_stitch,
        stream_audiences,
        sweep_audience_windows,
        identity_restitch,
        privacy_delete,
        privacy_export,
        expire_rejected_events,
        resume_privacy_requests,
        forward_events,
        deliver_events,
        replay_events,
        pull_crm_source,
        schedule_crm_pulls,
        backfill_consent_states,
        rebuild_profile_documents,
        ensure_profile_documents,
    ]
    crons: list[CronSpec] = [
        CronSpec(worker_heartbeat, every_s=5, run_at_startup=True),  # web readiness reads it
        CronSpec(enqueue_due_audiences, every_s=60),
        CronSpec(schedule_syncs, every_s=30),
        CronSpec(schedule_crm_pulls, every_s=60),  # each CRM source pulls every config.every_s (900)
        # A new identify reaches its profile within seconds: one stitch job ticks back to back (about
        # once a second) for 10 s and queues its successor; this cron restarts the chain if a worker
        # died (a running chain holds its key, so a second one returns at once). No pinned job id:
        # per-slot ids still coalesce across workers.
        CronSpec(identity_stitch, every_s=2, run_at_startup=True),
        # streaming audiences: the profiles each stitch touched, then window exits within a minute
        CronSpec(stream_audiences, every_s=1),
        CronSpec(sweep_audience_windows, every_s=60),
        # nightly full restitch refreshes computed traits with time windows
        CronSpec(identity_restitch, daily_at=(3, 17)),
        CronSpec(resume_privacy_requests, every_s=60),  # requests a crashed worker left unfinished
        CronSpec(expire_rejected_events, daily_at=(4, 7)),  # MAGPIE_REJECTED_RETENTION_DAYS
        # event forwarding: one reader job loops ~10 s and queues its successor; this restarts the chain
        CronSpec(forward_events, every_s=5, run_at_startup=True),
        # consent events stored before migration 0013 folded into its states once (then a single read)
        CronSpec(backfill_consent_states, every_s=3600, run_at_startup=True),
        # the Profile API's stored documents, after an upgrade to 0018 or a Redis that lost its generation
        CronSpec(ensure_profile_documents, every_s=3600, run_at_startup=True),
    ]
    return JobSet(functions=functions, crons=crons, ctx=ctx)
