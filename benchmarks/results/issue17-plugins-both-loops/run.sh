#!/bin/bash
cd /work/main
for i in 1 2 3; do
  for loop in uvloop asyncio; do
    echo "== $i $loop docedit $(date +%T)"
    HUB_LOOP=$loop .venv/bin/python benchmarks/docedit.py --runs 1 --updates 1000 --no-sync --json-file /tmp/b17/docedit-$loop-$i.json > /tmp/b17/docedit-$loop-$i.txt 2>&1
    echo "== $i $loop draw $(date +%T)"
    HUB_LOOP=$loop .venv/bin/python benchmarks/draw_put.py --runs 1 > /tmp/b17/draw-$loop-$i.txt 2>&1
    echo "== $i $loop presence $(date +%T)"
    .venv/bin/python benchmarks/presence_storm.py --runs 1 --loop $loop --json-file /tmp/b17/presence-$loop-$i.json > /tmp/b17/presence-$loop-$i.txt 2>&1
  done
done
echo done $(date +%T)
