#!/usr/bin/env python3
"""Choose the decision rule's threshold and fit its confidence curve on the
tuning half (never on the reporting half).

    python3 benches/eval.py --half tune --size base   # answers of the tuning half
    python3 benches/tune.py CACHE/answers-default-base.jsonl [--floor 11]

Run `eval.py --half tune` with a loose `--max-chance` in its match (the
answers it names carry their `chance`), then this prints, for thresholds
from 1e-3 down, the unknown clips named and the accuracy per damage kind,
and the confidence curve `1 / (1 + (chance / half)^slope)` fitted by
maximum likelihood to whether each named answer was right.
"""
import argparse, collections, json, math, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eval as ev  # noqa: E402


def right(r):
    m = r["answer"].get("match")
    return bool(m) and r["clip"]["group"] == "known" and ev.piece_of(m["path"]) == ev.piece_of(r["clip"]["path"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("answers")
    ap.add_argument("--floor", type=int, default=11, help="fewest votes (decision.min_votes)")
    a = ap.parse_args()
    rows = [json.loads(line) for line in open(a.answers)]
    rows = [r for r in rows if r["clip"]["half"] == "tune"]
    unk = [r for r in rows if r["clip"]["group"] == "unknown"]
    known = [r for r in rows if r["clip"]["group"] == "known"]

    def named(r, thr):
        m = r["answer"].get("match")
        return bool(m) and m["chance"] <= thr and m["score"] >= a.floor

    kinds = ["clean", "mp3_64k", "pink_0db", "dialogue", "speed_+4", "tempo_+5", "pitch_+1"]
    print(f"{len(unk)} unknown and {len(known)} known clips of the tuning half; floor {a.floor} votes")
    for thr in (1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6):
        fp = sum(named(r, thr) for r in unk)
        cells = collections.defaultdict(lambda: [0, 0])
        for r in known:
            key = (r["clip"]["kind"], r["clip"]["length"])
            cells[key][1] += 1
            cells[key][0] += named(r, thr) and right(r)
        acc = " ".join(k + " " + "/".join(f"{100 * cells[(k, L)][0] / max(1, cells[(k, L)][1]):.0f}" for L in ev.LENGTHS)
                       for k in kinds)
        print(f"max_chance {thr:g}: unknown named {fp}/{len(unk)} | {acc}")

    # Confidence: P(right | chance) = 1 / (1 + (chance / half)^slope), by
    # maximum likelihood over every named answer of the loose run.
    pts = [(r["answer"]["match"]["chance"], right(r)) for r in rows
           if r["answer"].get("match") and r["answer"]["match"]["score"] >= a.floor]
    pts = [(max(c, 1e-300), y) for c, y in pts]

    def loglik(half, slope):
        s = 0.0
        for c, y in pts:
            z = slope * (math.log(c) - math.log(half))
            p = 1.0 / (1.0 + math.exp(min(700.0, z)))
            p = min(max(p, 1e-12), 1 - 1e-12)
            s += math.log(p if y else 1 - p)
        return s

    best = max(((loglik(10 ** h, s), 10 ** h, s) for h in [x / 4 for x in range(-40, 9)]
                for s in [x / 20 for x in range(1, 41)]))
    print(f"confidence fit on {len(pts)} named answers ({sum(1 for _, y in pts if not y)} wrong): "
          f"half {best[1]:.3g}, slope {best[2]:.2f}")


if __name__ == "__main__":
    main()
