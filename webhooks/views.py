import hmac

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
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
    receipt = webhook_receive(body=request.body, signature=request.headers.get("X-Hub-Signature-256", ""))
    if receipt.status == 403:
        return HttpResponseForbidden("invalid signature")
    if receipt.status == 400:
        return HttpResponseBadRequest(receipt.event.detail)
    if receipt.status >= 500:
        return HttpResponse("temporarily unable to store the event", status=receipt.status)
    return HttpResponse("ok")


def _verify_subscription(request: HttpRequest) -> HttpResponse:
    """Meta's subscription handshake: echo `hub.challenge` when the verify token matches."""
    mode = request.GET.get("hub.mode")
    token = request.GET.get("hub.verify_token", "")
    challenge = request.GET.get("hub.challenge", "")
    if mode == "subscribe" and token and any(hmac.compare_digest(token, t) for t in channels_verify_tokens()):
        return HttpResponse(challenge, content_type="text/plain")
    return HttpResponseForbidden("verification failed")
