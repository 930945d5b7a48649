"""Meta's webhook signature (`integrations.meta.signature`): HMAC-SHA256 of the raw body, keyed
with the app secret, in `X-Hub-Signature-256: sha256=<hex>`."""

import hashlib
import hmac

import pytest

from integrations.meta import MetaProvider
from integrations.meta.signature import HEADER, sign, signature_valid

BODY = b'{"object": "whatsapp_business_account", "entry": []}'
SECRET = "test-app-secret-0123456789"


def test_a_body_signed_with_the_app_secret_is_valid():
    header = sign(BODY, SECRET)

    assert header == "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert signature_valid(body=BODY, header=header, app_secret=SECRET)


def test_meta_may_send_the_hex_digest_in_upper_case_or_with_a_trailing_space():
    digest = sign(BODY, SECRET).removeprefix("sha256=")

    assert signature_valid(body=BODY, header=f"sha256={digest.upper()} ", app_secret=SECRET)


@pytest.mark.parametrize(
    ("body", "header", "secret"),
    [
        (BODY + b" ", sign(BODY, SECRET), SECRET),  # one byte more: the raw body is what is signed
        (BODY, sign(BODY, "another-secret"), SECRET),
        (BODY, "", SECRET),
        (BODY, sign(BODY, SECRET).replace("sha256=", "sha1="), SECRET),
        (BODY, "sha256=", SECRET),
        (BODY, sign(BODY, ""), ""),  # a channel without a secret verifies nothing
    ],
)
def test_anything_else_is_not_valid(body, header, secret):
    assert not signature_valid(body=body, header=header, app_secret=secret)


def test_the_provider_reads_the_header_case_insensitively_as_django_gives_it(rf):
    request = rf.post("/webhooks/whatsapp/", data=BODY, content_type="application/json", HTTP_X_HUB_SIGNATURE_256=sign(BODY, SECRET))
    provider = MetaProvider(phone_number_id="1", app_secret=SECRET)

    assert provider.verify(request.body, request.headers)
    assert provider.verify(BODY, {HEADER: sign(BODY, SECRET)})
    assert not provider.verify(BODY, {})


def test_a_header_with_characters_a_hex_digest_never_has_is_not_valid():
    # Django decodes header bytes as latin-1, so anything may arrive; it must not be an error.
    assert not signature_valid(body=BODY, header="sha256=é" + sign(BODY, SECRET)[8:], app_secret=SECRET)
