"""Celery entry points: thin, take ids, hand the work over, own their retry policy.

A customer's turn, a delivery and a media fetch run on the worker's event loop (`runtime.dispatch`: the
task returns once the loop has the id; run to the end when the task runs eagerly). The
sweeps and the check of the models' shutdown dates run on the pool's threads.
"""

import logging

from celery import shared_task

from integrations.base import ProviderError

from . import delivery, media, queueing, runtime, templatesync, turn
from .agent import openai_client
from .agent.openai_client import AIError
from .models import Channel
from .services import media as media_services
from .services import openai_models, sweeps

logger = logging.getLogger(__name__)


@shared_task(name=queueing.INBOUND_HANDLE, bind=True, acks_late=True, ignore_result=True)
def inbound_handle(self, message_id: int) -> str:
    return runtime.dispatch(self.request, turn.message_handle, message_id)


@shared_task(name=queueing.AGENT_REPLY, bind=True, acks_late=True, ignore_result=True)
def agent_reply(self, message_id: int) -> str:
    # Queued with a countdown (REPLY_DEBOUNCE_SECONDS) for each customer text; only the
    # task of the burst's newest message answers. OpenAI calls retry inside; an unanswered
    # message is taken up again by the sweeper.
    return runtime.dispatch(self.request, turn.burst_reply, message_id)


@shared_task(name=queueing.MESSAGE_DELIVER, bind=True, acks_late=True, ignore_result=True)
def message_deliver(self, message_id: int) -> str:
    # Bounded by WHATSAPP_SEND_MAX_ATTEMPTS, counted on the message row; a retry is queued
    # again with its countdown by the delivery itself.
    return runtime.dispatch(self.request, delivery.message_deliver, message_id)


@shared_task(name=queueing.MEDIA_FETCH, bind=True, acks_late=True, ignore_result=True)
def media_fetch(self, message_id: int) -> str:
    # Bounded by MEDIA_FETCH_MAX_ATTEMPTS, counted on the media row; a retry is queued again
    # with its countdown by the fetch itself. A customer's message gets its turn afterwards.
    return runtime.dispatch(self.request, media.media_fetch, message_id)


@shared_task(name=queueing.MEDIA_SWEEP, ignore_result=True)
def media_sweep() -> int:
    return sweeps.media_sweep()


@shared_task(name=queueing.MEDIA_RETENTION, ignore_result=True)
def media_retention() -> int:
    return media_services.media_retention_apply()


@shared_task(name=queueing.INBOUND_SWEEP, ignore_result=True)
def inbound_sweep() -> int:
    return sweeps.inbound_sweep()


@shared_task(name=queueing.OUTBOUND_SWEEP, ignore_result=True)
def outbound_sweep() -> int:
    return sweeps.outbound_sweep()


@shared_task(name=queueing.STATUS_SWEEP, ignore_result=True)
def status_sweep() -> int:
    return sweeps.statuses_sweep()


@shared_task(name=queueing.MODEL_SHUTDOWNS_CHECK, ignore_result=True)
def model_shutdowns_check() -> int:
    # Without an API key there is nothing to ask; when OpenAI cannot be asked, admin keeps
    # showing what the last check read (with its time) until the next hour's.
    if not openai_client.ai_configured():
        return 0
    try:
        dates = runtime.run(openai_client.model_shutdown_dates)
    except AIError as exc:
        logger.warning("could not read OpenAI's model shutdown dates: %s", exc)
        return 0
    return len(openai_models.model_shutdowns_record(dates=dates))


@shared_task(name=queueing.TEMPLATES_SYNC_ALL, ignore_result=True)
def templates_sync_all() -> int:
    # Once per TEMPLATES_SYNC_INTERVAL_SECONDS; an account Meta cannot list now waits for the next.
    return sum(1 for sync in templatesync.templates_sync_all() if sync.error is None)


@shared_task(name=queueing.TEMPLATES_SYNC, ignore_result=True)
def templates_sync(channel_id: int) -> int:
    # Asked for by a webhook naming a template no sync has listed; not retried (the periodic sync follows).
    channel = Channel.objects.filter(pk=channel_id, is_active=True).first()
    if channel is None:
        return 0
    try:
        result = templatesync.templates_sync(channel=channel)
    except ProviderError as exc:
        logger.warning("templates of channel %s could not be listed: %s", channel_id, exc)
        return 0
    return result.created + result.updated
