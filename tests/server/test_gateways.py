"""server/gateways.py's listening sockets: one port, SO_REUSEPORT, and a port in use refused."""

from __future__ import annotations

import errno
import socket

import pytest

from server.gateways import RESTART_FIRST_S, RESTART_MAX_S, STABLE_S, listening_sockets, restart_delay


def test_the_gateways_share_one_port_and_a_port_in_use_is_refused_not_shared():
    group = listening_sockets("127.0.0.1", 0, 3)
    try:
        ports = {s.getsockname()[1] for s in group}
        assert len(ports) == 1 and all(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for s in group)
        # a second server with gateways on the same port: refused, though its sockets would have SO_REUSEPORT too
        with pytest.raises(OSError) as err:
            listening_sockets("127.0.0.1", ports.pop(), 2)
        assert err.value.errno == errno.EADDRINUSE
    finally:
        for s in group:
            s.close()


def test_a_gateway_that_dies_young_waits_longer_each_time_up_to_the_cap_and_one_that_served_restarts_at_once():
    waits, last = [], 0.0
    for _ in range(10):  # dies 1 s after each start
        last = restart_delay(last, 1.0)
        waits.append(last)
    assert waits[:4] == [RESTART_FIRST_S, 2 * RESTART_FIRST_S, 4 * RESTART_FIRST_S, 8 * RESTART_FIRST_S]
    assert max(waits) == waits[-1] == RESTART_MAX_S
    assert restart_delay(RESTART_MAX_S, STABLE_S) == RESTART_FIRST_S
