#!/usr/bin/env python3
"""The peer of llem-load's benchmark: an open-loop generator written the way
vLLM's benchmark_serving works (asyncio + aiohttp, one shared session, send
times precomputed from gamma gaps with shape=burstiness and
scale=1/(rate*burstiness), a task created per request at its send time, the
SSE stream read line by line and parsed with json.loads).

It writes one JSON line per request on stdout with the same fields the
benchmark reads from llem-load's records: id, t_scheduled, t_start (Unix ns),
send_lag_ns (t_start - t_scheduled, taken where the request function starts,
as vLLM takes its start time), status.

    aiohttp_peer.py --url http://127.0.0.1:PORT/v1 --rate R -n N [--burstiness B] [--seed S]
"""
import argparse
import asyncio
import json
import random
import sys
import time

import aiohttp


def send_times(n, rate, burstiness, seed):
    """Offsets in seconds: request 0 at 0, then gamma gaps of mean 1/rate."""
    rng = random.Random(seed)
    scale = 1.0 / (rate * burstiness)
    t, out = 0.0, []
    for i in range(n):
        if i:
            t += rng.gammavariate(burstiness, scale)
        out.append(t)
    return out


async def request(session, url, model, i, sched_ns, out):
    t_start = time.time_ns()
    st = time.perf_counter()
    payload = {"model": model, "prompt": "x" * 16, "max_tokens": 4, "stream": True,
               "stream_options": {"include_usage": True}}
    status, ttft, itl, last = "ok", None, [], st
    try:
        async with session.post(url, json=payload) as resp:
            if resp.status != 200:
                status = "http_error"
            else:
                async for line in resp.content:
                    line = line.strip()
                    if not line:
                        continue
                    data = line.decode("utf-8").removeprefix("data: ")
                    if data == "[DONE]":
                        continue
                    chunk = json.loads(data)
                    if chunk.get("choices"):
                        now = time.perf_counter()
                        if ttft is None:
                            ttft = now - st
                        else:
                            itl.append(now - last)
                        last = now
                if ttft is None:
                    status = "empty"
    except Exception as e:  # noqa: BLE001 - a failed request is a record, as in vLLM
        status = "error: " + type(e).__name__
    out.append({"id": i, "t_scheduled": sched_ns, "t_start": t_start,
                "send_lag_ns": t_start - sched_ns, "status": status})


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--rate", type=float, required=True)
    p.add_argument("-n", type=int, required=True)
    p.add_argument("--burstiness", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="standin")
    a = p.parse_args()
    times = send_times(a.n, a.rate, a.burstiness, a.seed)
    out = []
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, force_close=False)
    timeout = aiohttp.ClientTimeout(total=6 * 60 * 60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=True) as session:
        url = a.url.rstrip("/") + "/completions"
        tasks = []
        start = time.perf_counter()
        start_ns = time.time_ns()
        for i, t in enumerate(times):
            wait = t - (time.perf_counter() - start)
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(request(session, url, a.model, i, start_ns + int(t * 1e9), out)))
        await asyncio.gather(*tasks)
    w = sys.stdout
    for r in out:
        w.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
