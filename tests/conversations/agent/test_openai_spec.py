"""The spec check the fake OpenAI applies is a real one: it refuses what OpenAI would."""


def test_the_spec_validators_refuse_malformed_bodies(openai_spec_validators):
    validators = openai_spec_validators
    bad_response = {"model": "gpt-4.1", "input": [{"role": "robot", "content": "x"}], "conversation": 5}

    assert len(list(validators["responses"].iter_errors(bad_response))) >= 2
    assert list(validators["conversations"].iter_errors({"items": "nope"}))
    assert list(validators["items"].iter_errors({"items": [{"type": "function_call_output"}]}))


def test_the_spec_validators_accept_a_plain_body(openai_spec_validators):
    assert not list(openai_spec_validators["responses"].iter_errors({"model": "gpt-4.1", "input": "hi", "conversation": "conv_1"}))
    assert not list(openai_spec_validators["conversations"].iter_errors({"items": [], "metadata": {"a": "b"}}))


def test_the_spec_validators_check_an_image_part_and_a_transcription(openai_spec_validators):
    validators = openai_spec_validators

    def image(**part) -> dict:
        return {"model": "gpt-6-luna", "input": [{"role": "user", "content": [{"type": "input_image", **part}]}]}

    assert not list(validators["responses"].iter_errors(image(image_url="data:image/png;base64,iVBORw0KGgo=", detail="auto")))
    assert list(validators["responses"].iter_errors(image(image_url="data:image/png;base64,iVBORw0KGgo=", detail="sharp")))
    assert list(validators["responses"].iter_errors(image(image_url="data:image/png;base64,iVBORw0KGgo=")))  # detail is required
    assert not list(validators["transcriptions"].iter_errors({"model": "gpt-transcribe", "file": "voice-note.ogg", "language": "it"}))
    assert list(validators["transcriptions"].iter_errors({"model": "gpt-transcribe", "file": "voice-note.ogg", "lang": "it"}))
