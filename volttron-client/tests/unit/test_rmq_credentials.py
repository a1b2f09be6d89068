"""The derived broker password: pure-Python X25519 (RFC 7748) against its test vectors and cryptography."""

from __future__ import annotations

import os

import pytest

from volttron.client.messagebus.rmq_credentials import cryptography_x25519, derive_password, x25519
from volttron.utils.errors import KeyFormatError
from volttron.utils.keys import encode_key, generate_keypair


@pytest.mark.parametrize("scalar, u_coordinate, expected", [
    # RFC 7748 §5.2
    ("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
     "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
     "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"),
    ("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
     "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
     "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"),
])
def test_x25519_gives_the_rfc_7748_results(scalar: str, u_coordinate: str, expected: str) -> None:
    assert x25519(bytes.fromhex(scalar), bytes.fromhex(u_coordinate)).hex() == expected


def test_x25519_iterated_as_in_rfc_7748() -> None:
    k = u = (9).to_bytes(32, "little")
    results = {}
    for i in range(1, 1001):
        k, u = x25519(k, u), k
        if i in (1, 1000):
            results[i] = k.hex()
    assert results == {1: "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079",
                       1000: "684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"}


def test_the_diffie_hellman_example_of_rfc_7748() -> None:
    alice = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    bob = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    base = (9).to_bytes(32, "little")
    alice_public, bob_public = x25519(alice, base), x25519(bob, base)
    assert alice_public.hex() == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    assert bob_public.hex() == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
    shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    assert x25519(alice, bob_public).hex() == x25519(bob, alice_public).hex() == shared


def test_x25519_agrees_with_cryptography_on_random_inputs() -> None:
    for _ in range(64):
        scalar, u_coordinate = os.urandom(32), os.urandom(32)  # the top bit of u set half the time
        assert x25519(scalar, u_coordinate) == cryptography_x25519(scalar, u_coordinate)


def test_an_agent_and_its_platform_derive_the_same_password() -> None:
    for _ in range(8):
        agent, platform = generate_keypair(), generate_keypair()
        by_agent = derive_password(agent.secret, platform.public, "inst.alice", x25519)
        assert by_agent == derive_password(platform.secret, agent.public, "inst.alice")
        assert by_agent == derive_password(agent.secret, platform.public, "inst.alice")


@pytest.mark.parametrize("exchange", [x25519, cryptography_x25519])
def test_a_public_key_of_small_order_gives_no_password(exchange) -> None:
    secret = generate_keypair().secret
    for point in (bytes(32), (1).to_bytes(32, "little")):
        with pytest.raises(KeyFormatError):
            derive_password(secret, encode_key(point), "inst.alice", exchange)


def test_x25519_takes_32_bytes_only() -> None:
    with pytest.raises(ValueError):
        x25519(bytes(31), bytes(32))
