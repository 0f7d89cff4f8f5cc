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

    d = tempfile.mkdtemp()
    s = SQLiteStore(os.path.join(d, "x.sqlite3"))
    await s.start()
    for round_ in range(3):
        t = time.perf_counter()
        c = time.process_time()
        await asyncio.gather(*(s.put("chat", f"r/{round_}-{i:06d}", b"x" * 200) for i in range(5000)))
        print(
            f"5000 concurrent puts: {1e6 * (time.perf_counter() - t) / 5000:6.1f} us/put wall, {1e6 * (time.process_time() - c) / 5000:6.1f} us/put cpu"
        )
    await s.close()


asyncio.run(main())
