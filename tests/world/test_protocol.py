"""The codec and limits, by plain function calls."""

import msgpack
import numpy as np
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
    # the bounds themselves, as clients send them (floats): accepted
    assert protocol.decode(pk({"t": "input", "seq": 2**32 - 1, "dx": -1.0, "dy": 1.0})) == Input(2**32 - 1, -1.0, 1.0)
    assert protocol.decode(pk({"t": "input", "seq": 0, "dy": 0.25, "dx": -0.0, "x": 1})) == Input(0, -0.0, 0.25)
    assert protocol.decode(pk({"t": "ping", "id": -(2**63)})) == Ping(-(2**63))


@pytest.mark.parametrize(
    "frame, code, field",
    [
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
        # what clients send (an int seq, float dx and dy) takes one test; these fail it and get the checks
        (pk({"t": "input", "seq": 1, "dx": 0.5, "dy": float("inf")}), "bad_field", "dy"),
        (pk({"t": "input", "seq": 1, "dx": float("nan"), "dy": 0.5}), "bad_field", "dx"),
        (pk({"t": "input", "seq": 1, "dx": -1.5, "dy": 0.5}), "bad_field", "dx"),
        (pk({"t": "input", "seq": 2**32, "dx": 0.5, "dy": 0.5}), "bad_field", "seq"),
        (pk({"t": "input", "seq": True, "dx": 0.5, "dy": 0.5}), "bad_field", "seq"),
        (pk({"t": "input", "seq": 1, "dx": 0.5}), "bad_field", "dy"),
        (pk({"t": "ping", "id": True}), "bad_field", "id"),
        (pk({"t": "ping", "id": 2**63}), "bad_field", "id"),
        (pk({"t": "ping", "id": 1.5}), "bad_field", "id"),
    ],
)
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
    assert tokens.verify(secret, "43" + tok[2:], now) == (None, "forged")  # another account
    assert tokens.verify(secret, tok.replace(".3.", ".4.", 1), now) == (None, "forged")  # another generation
    assert tokens.verify(secret, tok, now + 60) == (None, "expired")
    for junk in ("", "a.b.c", "1.2", "1.2.3", "1.2.3.4.5", "...", "1.2.3.\u00e9", "9" * 200):
        assert tokens.verify(secret, junk, now) == (None, "malformed"), junk


def test_error_encoding_round_trips():
    err = ProtocolError("bad_field", "input: dx", "dx", "input")
    assert msgpack.unpackb(protocol.encode_error(err)) == {
        "t": "error",
        "code": "bad_field",
        "message": "input: dx",
        "field": "dx",
        "ref": "input",
    }


@pytest.mark.parametrize("tick", [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**40])
@pytest.mark.parametrize("ack", [-1, 0, 127, 128, 65536, 2**32 - 1])
def test_the_bots_update_head_reader_reads_what_the_encoder_writes(tick, ack):
    # the contract between the server's encoder and the bots' reader: (tick, ack) from the head
    # alone, for keyframes and deltas, with and without chat; the fast path's tail test agrees
    from bots import bot
    from world.snapshot import View, encode_update

    cells = msgpack.packb([[3, b"\x01\x00\x00\x00", b"\x10\x00\x20\x00"]])
    moves = (msgpack.packb([]), msgpack.packb([[3, b"\x01\xff", b""]]))
    for chat in ([], [msgpack.packb([1, "ada", "hi", tick])]):
        v = View.make(cells, [], [], [], chat, build=5, moves=moves)
        for sent in (None, 4):
            data = b"\x00\x00" + encode_update(tick, ack, v, sent) + b"\x00"
            assert bot.read_update_head(data, 2, len(data) - 1) == (tick, ack)
            msg = msgpack.unpackb(data[2:-1])
            assert (msg["tick"], msg["ack"]) == (tick, ack)
            assert bool(msg["moves"]) == (sent == 4)
            assert data[2:-1].endswith(bot.EMPTY_CHAT_TAIL) == (not chat)
    assert bot.read_update_head(msgpack.packb({"t": "update", "tick": tick, "ack": ack}), 0, 30) is None


def test_a_move_block_applies_moves_then_fixes_then_who_left_and_came():
    ids = np.array([3, 5, 8, 13], np.uint32)
    before = np.array([[100, 100], [200, 200], [300, 300], [400, 400]], np.uint16)
    d = np.array([[0, 0], [127, -127], [0, 0], [0, 0]], np.int8).tobytes()
    fix = np.array([(2, 428, 300), (3, 400, 65535)], protocol.MOVE_FIX).tobytes()
    block = msgpack.unpackb(protocol.encode_move_block(9, d, fix))
    got_ids, got = protocol.apply_cells({9: (ids, before)}, [], [block])[9]
    assert got_ids.tolist() == ids.tolist()
    assert got.tolist() == [[100, 100], [327, 73], [428, 300], [400, 65535]]
    # 3 and 8 leave, 2 and 9 come; the cell is back in id order
    gone = np.array([0, 2], "<u2").tobytes()
    came_ids, came = np.array([2, 9], "<u4").tobytes(), np.array([[50, 60], [700, 700]], "<u2").tobytes()
    block = msgpack.unpackb(protocol.encode_move_block(9, d, b"", gone, came_ids, came))
    got_ids, got = protocol.apply_cells({9: (ids, before)}, [], [block])[9]
    assert got_ids.tolist() == [2, 5, 9, 13] and got.tolist() == [[50, 60], [327, 73], [700, 700], [400, 400]]
    assert protocol.apply_cells({9: (ids, before)}, [], [[9, b"", b""]])[9][1].tolist() == before.tolist()
    assert protocol.apply_cells({9: (ids, before)}, [], []) == {}  # a cell in neither list is dropped


def test_pack_uints_is_msgpack_s_packing_of_each_int_back_to_back():
    from world.protocol import pack_uints

    bounds = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1]  # each size class's
    rng = np.random.default_rng(3)
    values = bounds + [int(v) >> int(s) for v, s in zip(rng.integers(0, 2**63, 500), rng.integers(0, 63, 500))]
    packed, ends = pack_uints(np.asarray(values, np.uint64))
    each = [msgpack.packb(v) for v in values]
    assert packed == b"".join(each)
    assert ends.tolist() == np.cumsum([len(b) for b in each]).tolist()
    assert {len(b) for b in each} == {1, 2, 3, 5, 9}
    ids = np.asarray([5, 300, 70_000], np.int64)  # entity ids, as the table holds them
    assert pack_uints(ids)[0] == b"".join(msgpack.packb(v) for v in ids.tolist())
    empty, no_ends = pack_uints(np.zeros(0, np.int64))
    assert empty == b"" and len(no_ends) == 0
    # ids under 65,536 (every world's, mostly): one class, two or three of fixint, uint8 and uint16
    for lo, hi in ((0, 128), (128, 256), (256, 65536), (0, 256), (100, 300), (0, 65536), (200, 65536)):
        ids = rng.integers(lo, hi, 300)
        each = [msgpack.packb(v) for v in ids.tolist()]
        packed, ends = pack_uints(ids)
        assert packed == b"".join(each), (lo, hi)
        assert ends.tolist() == np.cumsum([len(b) for b in each]).tolist()
