#!/usr/bin/python3
"""Peer of bench/tokenizer.sh: lines/s of python3-sentencepiece (its C++ encoder, one thread)
over the corpus, best of REPS passes. Usage: tokenizer_peer.py CORPUS REPS DIR..."""
import json
import os
import sys
import time

import sentencepiece as spm

texts = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
reps = int(sys.argv[2])
for d in sys.argv[3:]:
    sp = spm.SentencePieceProcessor(model_file=os.path.join(d, "tokenizer.model"))
    best, total = 1e30, 0
    for _ in range(reps):
        t0 = time.perf_counter()
        total = sum(len(sp.encode(t)) for t in texts)
        best = min(best, time.perf_counter() - t0)
    print("%s %.0f %d" % (d, len(texts) / best, total))
