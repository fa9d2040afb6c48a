"""Open-loop load at a fixed request rate (asyncio + aiohttp): latency that queueing in the client
cannot hide. Prints JSON: achieved rate, p50, p99 in ms, and non-200 count."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid

import aiohttp

EVENT = (
    '{{"type":"track","event":"Product Viewed","anonymousId":"anon-{n}","messageId":"{id}",'
    '"properties":{{"plan":"pro","revenue":42.5}},"context":{{"page":{{"url":"https://shop.example/p/1"}}}}}}'
)


def body(batch: int) -> tuple[str, bytes]:
    events = [EVENT.format(n=i % 5000, id=uuid.uuid4()) for i in range(batch)]
    if batch == 1:
        return "/v1/track", events[0].encode()
    return "/v1/batch", ('{"batch":[' + ",".join(events) + "]}").encode()


async def main(url: str, rate: float, duration_s: float, batch: int, auth: str) -> None:
    latencies: list[float] = []
    failures = 0
    headers = {"Authorization": auth, "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(url, connector=connector, headers=headers) as session:

        async def one() -> None:
            nonlocal failures
            path, payload = body(batch)
            started = time.perf_counter()
            async with session.post(path, data=payload) as response:
                await response.read()
                failures += response.status != 200
            latencies.append((time.perf_counter() - started) * 1000)

        tasks, start = [], time.perf_counter()
        total = int(rate * duration_s)
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]  # noqa: E731
    print(
        json.dumps({"rate": total / elapsed, "p50_ms": pick(0.5), "p99_ms": pick(0.99), "failures": failures})
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]))
