"""The simulator's provider (`integrations.sandbox`): deliveries signed and read as Meta's,
sends that give an id and leave nothing, no media."""

import asyncio
import json

import pytest

from integrations.base import Identity, Outgoing, ProviderError
from integrations.meta.signature import HEADER, sign
from integrations.sandbox import SandboxProvider

SECRET = "sandbox-secret-0123456789"


def test_a_delivery_signed_with_the_sandbox_secret_is_verified_and_read_as_metas(meta_example):
    body = json.dumps(meta_example("Text Message")).encode()
    provider = SandboxProvider(app_secret=SECRET, phone_number_id="sandbox", access_token="")

    assert provider.verify(body, {HEADER: sign(body, SECRET)})
    assert not provider.verify(body, {HEADER: sign(body, "guess")})
    assert provider.parse(body).messages[0].text == "Does it come in another color?"


def test_sending_gives_each_message_an_id_of_its_own_and_reaches_no_one():
    provider = SandboxProvider(app_secret=SECRET)

    async def send_two():
        return [await provider.send(Outgoing(type="text", text="ciao"), to=Identity(phone="393331234567")) for _ in range(2)]

    first, second = asyncio.run(send_two())

    assert first.startswith("sandbox.") and second.startswith("sandbox.") and first != second


def test_a_read_receipt_does_nothing_and_media_cannot_be_fetched():
    provider = SandboxProvider(app_secret=SECRET)

    assert asyncio.run(provider.mark_read("wamid.x", typing=True)) is None
    with pytest.raises(ProviderError) as refused:
        asyncio.run(provider.fetch_media("media-1"))
    assert refused.value.permanent
