#!/usr/bin/env bash
# In-process A/B of main's BM25 search (plain postings) vs this branch's (packed): both compiled
# into one binary (main's sources with -Dcrossrank=crossrank_old), same data, rounds alternated,
# thread CPU time. Usage: bash wip/ab/build.sh && /tmp/ab/ab 25 [scifact|zipf100k] [0|1|2]
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; WT="$(cd "$HERE/../.." && pwd)"
mkdir -p /tmp/ab /tmp/oldsrc && cd /tmp/ab && cp "$HERE"/{dump.py,driver.cpp,main.cpp} .
(cd "$WT" && git archive main cpp python bench | tar -x -C /tmp/oldsrc)
[ -f /tmp/ab/zipf100k.docs ] || PYTHONPATH=/tmp/old/python python dump.py  # needs main's built tree in /tmp/old
FL="-O3 -DNDEBUG -std=c++17 -pthread -w"
for f in bm25 bm25_pruned parallel; do
  g++ $FL -Dcrossrank=crossrank_old -I/tmp/oldsrc/cpp/include -I/tmp/oldsrc/cpp/src -c /tmp/oldsrc/cpp/src/$f.cpp -o old_$f.o
done
g++ $FL -Dcrossrank=crossrank_old '-DAB(x)=old_##x' -I/tmp/oldsrc/cpp/include -c driver.cpp -o old_driver.o
for f in bm25 bm25_pruned bm25_codec parallel; do
  g++ $FL -I"$WT"/cpp/include -I"$WT"/cpp/src -c "$WT"/cpp/src/$f.cpp -o new_$f.o
done
g++ $FL -DAB_NEW '-DAB(x)=new_##x' -I"$WT"/cpp/include -I"$WT"/cpp/src -c driver.cpp -o new_driver.o
g++ $FL -c main.cpp -o main.o && g++ -pthread -o ab main.o old_*.o new_*.o
