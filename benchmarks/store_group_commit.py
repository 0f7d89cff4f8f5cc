"""Group commit of SQLiteStore.put: 5000 concurrent puts (as many chat.send in flight at once), 3 rounds.

    .venv/bin/python benchmarks/store_group_commit.py

Prints wall and CPU microseconds per put. Run it against another checkout with PYTHONPATH=<checkout> from a
directory outside this one to compare.
"""

import asyncio
import os
import tempfile
import time


async def main() -> None:
    from hub.store.sqlite import SQLiteStore

    store = SQLiteStore(os.path.join(tempfile.mkdtemp(), "bench.sqlite3"))
    await store.start()
    for round_ in range(3):
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(store.put("chat", f"r/{round_}-{i:06d}", b"x" * 200) for i in range(PUTS)))
        wall_us = 1e6 * (time.perf_counter() - wall) / PUTS
        cpu_us = 1e6 * (time.process_time() - cpu) / PUTS
        print(f"{PUTS} concurrent puts: {wall_us:6.1f} us/put wall, {cpu_us:6.1f} us/put CPU")
    await store.close()


PUTS = 5000

if __name__ == "__main__":
    asyncio.run(main())
