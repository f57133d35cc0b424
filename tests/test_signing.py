"""Signatures against published test vectors, not against our own code."""

from __future__ import annotations

import base64

from relay import signing


def test_blue_signature_is_hex_hmac_sha256_of_the_body() -> None:
    # RFC 4231, test case 2.
    signature = signing.blue_signature("Jefe", b"what do ya want for nothing?")

    assert signature == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def test_standard_webhooks_signature_matches_the_reference_vector() -> None:
    signature = signing.standard_signature(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )

    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_a_secret_without_the_whsec_prefix_is_used_as_utf8_bytes() -> None:
    assert signing.standard_signing_key("plain secret") == b"plain secret"
    assert signing.standard_signing_key("whsec_not base64!") == b"whsec_not base64!"


def test_generated_secrets_are_unique_whsec_keys_of_24_bytes() -> None:
    first, second = signing.generate_secret(), signing.generate_secret()

    assert first != second
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 24


def test_headers_carry_both_schemes_and_verify() -> None:
    body = '{"event": "TODO_CREATED", "title": "Café ☕"}'.encode()

    headers = signing.signature_headers("whsec_c2VjcmV0", "evt_7", 1700000000, body)

    assert set(headers) == {
        "X-Signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
    assert headers["webhook-id"] == "evt_7"
    assert headers["webhook-timestamp"] == "1700000000"
    assert signing.verify_blue_signature("whsec_c2VjcmV0", body, headers["X-Signature"])
    assert signing.verify_standard_signature(
        "whsec_c2VjcmV0", "evt_7", 1700000000, body, headers["webhook-signature"]
    )


def test_a_changed_body_fails_verification() -> None:
    body = b'{"a": 1}'
    signature = signing.blue_signature("s", body)

    assert not signing.verify_blue_signature("s", b'{"a": 2}', signature)
    assert not signing.verify_blue_signature("t", body, signature)
