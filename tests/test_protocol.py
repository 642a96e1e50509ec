"""The codec and limits, by plain function calls."""

import msgpack
import pytest

from server import tokens
from world import protocol
from server.limits import TokenBucket
from world.protocol import Chat, Hello, Input, Ping, ProtocolError


def pk(msg) -> bytes:
    return msgpack.packb(msg)


def code_of(frame) -> tuple[str, str | None]:
    with pytest.raises(ProtocolError) as info:
        protocol.decode(frame)
    return info.value.code, info.value.field


def test_decodes_every_client_message():
    assert protocol.decode(pk({"t": "hello", "v": 1, "name": "ada"})) == Hello(1, "ada", None)
    assert protocol.decode(pk({"t": "input", "seq": 7, "dx": 1, "dy": -0.5})) == Input(7, 1.0, -0.5)
    assert protocol.decode(pk({"t": "ping", "id": 3})) == Ping(3)
    assert protocol.decode(pk({"t": "chat", "text": "  hi\x00 there\n"})) == Chat("hi there")


@pytest.mark.parametrize("frame, code, field", [
    ("text frame", "bad_frame", None),
    (b"\xc1\xc1\xc1", "bad_frame", None),
    (pk([1, 2, 3]), "bad_frame", None),
    (pk({"x": 1}), "bad_frame", None),
    (pk({"t": "teleport"}), "unknown_type", None),
    (pk({"t": "input", "seq": 1, "dx": "left", "dy": 0}), "bad_field", "dx"),
    (pk({"t": "input", "seq": 1, "dx": 2.0, "dy": 0}), "bad_field", "dx"),
    (pk({"t": "input", "seq": 1, "dx": float("nan"), "dy": 0}), "bad_field", "dx"),
    (pk({"t": "input", "seq": True, "dx": 0, "dy": 0}), "bad_field", "seq"),
    (pk({"t": "input", "seq": -1, "dx": 0, "dy": 0}), "bad_field", "seq"),
    (pk({"t": "input", "dx": 0, "dy": 0}), "bad_field", "seq"),
    (pk({"t": "chat", "text": "   "}), "bad_field", "text"),
    (pk({"t": "chat", "text": "x" * 201}), "bad_field", "text"),
    (pk({"t": "chat", "text": 5}), "bad_field", "text"),
    (pk({"t": "hello", "v": "1"}), "bad_field", "v"),
    (pk({"t": "ping"}), "bad_field", "id"),
])
def test_bad_messages_get_their_code(frame, code, field):
    assert code_of(frame) == (code, field)


def test_token_bucket_refills_at_its_rate():
    bucket = TokenBucket(rate=10, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.05) is False  # half a token
    assert bucket.take(0.1) is True
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]  # never above burst


def test_tokens_verify_only_what_was_issued():
    secret = b"k" * 32
    now = 1_000_000.0
    tok = tokens.issue(secret, 42, 3, int(now) + 60)
    assert tokens.verify(secret, tok, now) == (tokens.Claim(42, 3, int(now) + 60), "")
    assert tokens.verify(b"other" * 8, tok, now) == (None, "forged")
    assert tokens.verify(secret, "43" + tok[2:], now) == (None, "forged")      # another account
    assert tokens.verify(secret, tok.replace(".3.", ".4.", 1), now) == (None, "forged")   # another generation
    assert tokens.verify(secret, tok, now + 60) == (None, "expired")
    for junk in ("", "a.b.c", "1.2", "1.2.3", "1.2.3.4.5", "...", "1.2.3.\u00e9", "9" * 200):
        assert tokens.verify(secret, junk, now) == (None, "malformed"), junk


def test_error_encoding_round_trips():
    err = ProtocolError("bad_field", "input: dx", "dx", "input")
    assert msgpack.unpackb(protocol.encode_error(err)) == {
        "t": "error", "code": "bad_field", "message": "input: dx", "field": "dx", "ref": "input"}
