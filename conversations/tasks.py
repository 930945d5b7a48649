"""Celery entry points: thin, take ids, call one service, own their retry policy."""

from celery import shared_task

from .services import inbound, outbound, pipeline, textloop


@shared_task(bind=True, acks_late=True, ignore_result=True)
def inbound_handle(self, message_id: int) -> str:
    if not self.request.is_eager and textloop.enabled():
        # A customer text: handed to the process's event loop, which answers it.
        return textloop.submit(message_id=message_id)
    return pipeline.inbound_handle(message_id=message_id)


@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=None)
def message_deliver(self, message_id: int) -> str:
    # Bounded by WHATSAPP_SEND_MAX_ATTEMPTS, counted on the message row (not in the queue).
    result = outbound.message_deliver(message_id=message_id)
    if result.outcome == "retry":
        raise self.retry(countdown=result.retry_in)
    return result.outcome


@shared_task(ignore_result=True)
def inbound_sweep() -> int:
    return pipeline.inbound_sweep()


@shared_task(ignore_result=True)
def outbound_sweep() -> int:
    return pipeline.outbound_sweep()


@shared_task(ignore_result=True)
def status_sweep() -> int:
    return inbound.statuses_sweep()


@shared_task(bind=True, acks_late=True, ignore_result=True)
def agent_reply(self, message_id: int) -> str:
    # Queued with a countdown (REPLY_DEBOUNCE_SECONDS) for each customer text; only the task
    # of the burst's newest message answers. No Celery retry: OpenAI calls retry inside,
    # and an unanswered message is found again by the sweeper.
    if not self.request.is_eager and textloop.enabled():
        return textloop.submit_reply(message_id=message_id)
    from .agent.service import burst_answer

    return burst_answer(message_id=message_id)
