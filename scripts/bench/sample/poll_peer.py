#!/usr/bin/env python3
"""Peer of llem-sample's overhead benchmark: the original's way of sampling, a Python
thread polling (its PowerThermalSampler polls NVML every 100 ms), here reading the same
CPU-time source as llem's estimate (/proc/stat) and keeping every row in memory, as the
original does until the run ends. The loop is written the way a skilled Python user would:
it waits for absolute deadlines on the monotonic clock (Event.wait, so stop is prompt)
rather than sleeping a fixed interval after each read, which drifts by the read's cost;
when it falls more than a tick behind it skips the missed ticks, as Go's time.Ticker
(llem-sample's) drops them.

    poll_peer.py SECONDS INTERVAL_MS
"""
import sys
import threading
import time


def poll(stop, interval, rows):
    with open("/proc/stat", "rb") as f:
        deadline = time.monotonic()
        while not stop.is_set():
            f.seek(0)
            line = f.readline().split()
            busy = sum(int(x) for x in line[1:4]) + sum(int(x) for x in line[6:9])
            rows.append((time.time_ns(), busy))
            deadline += interval
            now = time.monotonic()
            if deadline < now:  # behind by more than a tick: drop the missed ones
                deadline = now + interval - (now - deadline) % interval
            stop.wait(deadline - now)


def main():
    seconds, interval = float(sys.argv[1]), float(sys.argv[2]) / 1000
    stop, rows = threading.Event(), []
    t = threading.Thread(target=poll, args=(stop, interval, rows))
    t.start()
    time.sleep(seconds)
    stop.set()
    t.join()
    print(f"poll_peer: {len(rows)} rows in {seconds} s", file=sys.stderr)


if __name__ == "__main__":
    main()
