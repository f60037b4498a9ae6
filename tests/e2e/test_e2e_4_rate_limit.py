"""Check 4: a burst over the tunnel gets 429s from nginx (limit_req per client
address) while normal requests, from another peer meanwhile and from the same
laptop a moment later, keep being served."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx

from tests.support.e2e import (
    PROBE_TIMEOUT_S,
    Testbed,
    https_client,
    login,
    pi_tls,
    wait_for,
    wg_peer,
)

BURST = 200
PARALLEL = 16  # below nginx's limit_conn (32 per client)


async def _burst(tb: Testbed, cookies: httpx.Cookies) -> list[tuple[int, str]]:
    limits = httpx.Limits(max_connections=PARALLEL, max_keepalive_connections=PARALLEL)
    async with httpx.AsyncClient(
        base_url=f"https://{tb.tunnel}",
        verify=pi_tls(tb.ca_cert),
        cookies=cookies,
        limits=limits,
        timeout=httpx.Timeout(10.0, connect=PROBE_TIMEOUT_S, pool=30.0),
    ) as client:

        async def one() -> tuple[int, str]:
            response = await client.get("/api/agents")
            return response.status_code, response.text

        return await asyncio.gather(*(one() for _ in range(BURST)))


def test_burst_gets_429_from_nginx_while_others_are_served(testbed: Testbed) -> None:
    tb = testbed
    travel = (tb.artifacts / "travel.conf").read_text()
    with wg_peer(tb, tb["NS_OUTSIDE"], f"{tb['IFTAG']}-trv", travel) as peer:
        wait_for("the travel peer's handshake", lambda: peer.kick() or peer.handshake(), 15)
        with https_client(tb) as laptop:
            login(laptop, tb)
            assert laptop.get("/api/agents").status_code == 200
            time.sleep(2.5)  # let the bucket refill after the login and that request

            # another user (the travel peer, its own address) asks meanwhile
            others: list[int] = []
            stop = threading.Event()

            def other_user() -> None:
                with https_client(tb, tb["NS_OUTSIDE"]) as client:
                    while not stop.is_set():
                        try:
                            others.append(client.get("/healthz").status_code)
                        except httpx.HTTPError:
                            others.append(-1)
                        time.sleep(0.1)

            thread = threading.Thread(target=other_user, daemon=True)
            thread.start()
            time.sleep(0.3)
            try:
                started = time.monotonic()
                results = asyncio.run(_burst(tb, laptop.cookies))
                took = time.monotonic() - started
                time.sleep(0.3)
            finally:
                stop.set()
                thread.join(timeout=10)

            statuses = [status for status, _ in results]
            limited = [text for status, text in results if status == 429]
            assert limited, f"no 429 in a burst of {BURST} in {took:.2f} s: {sorted(set(statuses))}"
            from_nginx = [text for text in limited if "<center>nginx</center>" in text]
            assert from_nginx, f"the 429s did not come from nginx: {limited[0][:200]}"
            assert set(statuses) <= {200, 429}, f"unexpected answers: {sorted(set(statuses))}"
            served = statuses.count(200)
            assert served >= 40, f"only {served} requests served before the limit (burst 40)"
            assert others and set(others) == {200}, f"the other peer during the burst: {others}"

            # the same laptop, a moment later, is served again
            time.sleep(1.5)
            again = laptop.get("/api/agents")
            assert again.status_code == 200, f"after the burst: {again.status_code}"
    print(
        f"burst of {BURST} ({PARALLEL} connections, {took:.2f} s): {served} served, "
        f"{len(limited)} x 429 ({len(from_nginx)} from nginx); other peer meanwhile: "
        f"{len(others)} x 200; the laptop 1.5 s later: 200"
    )
