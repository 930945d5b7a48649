import hmac

from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from conversations.services.channels import channels_verify_tokens

from .services import webhook_receive


@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def whatsapp(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _verify_subscription(request)
    status, text = webhook_answer(body=request.body, headers=request.headers)
    return HttpResponse(text, status=status)


def webhook_answer(*, body: bytes, headers) -> tuple[int, str]:
    """Receive a delivery; the status and text to answer the provider with (also the WSGI
    short route's: `webhooks.wsgi`)."""
    receipt = webhook_receive(body=body, headers=headers)
    if receipt.status == 403:
        return 403, "invalid signature"
    if receipt.status == 400:
        return 400, receipt.event.detail
    if receipt.status >= 500:
        return receipt.status, "temporarily unable to store the event"
    return 200, "ok"


def _verify_subscription(request: HttpRequest) -> HttpResponse:
    """Meta's subscription handshake: echo `hub.challenge` when the verify token matches."""
    mode = request.GET.get("hub.mode")
    token = request.GET.get("hub.verify_token", "")
    challenge = request.GET.get("hub.challenge", "")
    if mode == "subscribe" and token and any(hmac.compare_digest(token, t) for t in channels_verify_tokens()):
        return HttpResponse(challenge, content_type="text/plain")
    return HttpResponseForbidden("verification failed")
