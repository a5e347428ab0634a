#!/usr/bin/env python3
"""How a query's cost grows with the library: the evaluation index (6 h of
real audio) and simulated libraries of more hours.

    python3 benches/scale.py [--hours 100,1000] [--runs 10] [--cache DIR]

Needs the evaluation's base index and clips (run `benches/eval.py --half tune
--size base` first). A simulated library is the evaluation index plus copies
of its tracks whose hashes are remapped by a per-copy bijection
(`examples/simulate_library.rs`: real postings, real density, written through
the store's own commit and merge path; no decoding). For each size: the
index's size and build time, whole-process `ostid match` of one 10 s clip
(known and unknown; median of RUNS runs over 5 clips each, OS cache warm),
peak RSS of those, and a batch of 40 + 40 clips in one process (seconds per
clip, decoding included). Release build, 2 threads.
"""
import argparse, json, os, statistics, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import eval as ev  # noqa: E402


def clips(cache, group, n):
    name = f"manifest-tune-{group}-clean-{50 if group == 'known' else 120}.json"
    with open(os.path.join(cache, "queries-v2-7", name)) as f:
        m = json.load(f)
    return [c["query"] for c in m if c["length"] == 10][:n]


def whole_process(ostid, db, queries, runs):
    times, rss = [], 0.0
    for q in queries:
        ev.timed([ostid, "--db", db, "match", q])  # warm the OS cache
        for _ in range(runs):
            _, _, el, r = ev.timed([ostid, "--db", db, "match", q])
            times.append(el * 1000)
            rss = max(rss, r)
    return statistics.median(times), rss


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default=os.path.join(ROOT, "cache"))
    ap.add_argument("--hours", default="100,1000", help="simulated sizes, comma-separated")
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    cache = os.path.abspath(args.cache)
    base = os.path.join(cache, "db-default-base")
    if not os.path.exists(base):
        sys.exit("no evaluation index: run `python3 benches/eval.py --half tune --size base` first")
    ev.run(["cargo", "build", "--release", "-q", "--bin", "ostid", "--example", "simulate_library"], cwd=ROOT)
    ostid = os.path.join(ROOT, "target", "release", "ostid")
    simulate = os.path.join(ROOT, "target", "release", "examples", "simulate_library")
    known, unknown = clips(cache, "known", 5), clips(cache, "unknown", 5)
    batch = clips(cache, "known", 40) + clips(cache, "unknown", 40)
    listfile = os.path.join(cache, "clips-scale.txt")
    with open(listfile, "w") as f:
        f.write("\n".join(batch) + "\n")
    rows = []
    sizes = [("base", None)] + [(f"{h} h", float(h)) for h in args.hours.split(",") if h]
    for name, hours in sizes:
        db, build_s = base, None
        if hours is not None:
            db = os.path.join(cache, f"db-scale-{hours:g}h")
            subprocess.run(["rm", "-rf", db], check=True)
            t = time.time()
            ev.run([simulate, base, db, str(hours)])
            build_s = time.time() - t
        stats = json.loads(subprocess.run([ostid, "--db", db, "stats", "--json"], capture_output=True,
                                          text=True, check=True).stdout)
        nbytes = int(subprocess.run(["du", "-sb", db], capture_output=True, text=True).stdout.split()[0])
        k_ms, k_rss = whole_process(ostid, db, known, args.runs)
        u_ms, u_rss = whole_process(ostid, db, unknown, args.runs)
        _, _, el, b_rss = ev.timed([ostid, "--db", db, "-q", "match", "--json", "-j", "2", "--from-file", listfile])
        row = {"size": name, "hours": stats["hours"], "tracks": stats["tracks"], "bytes": nbytes,
               "mb_per_hour": round(nbytes / 1e6 / stats["hours"], 2),
               "build_s": None if build_s is None else round(build_s, 1),
               "known_ms": round(k_ms, 1), "known_rss_mb": round(k_rss, 1),
               "unknown_ms": round(u_ms, 1), "unknown_rss_mb": round(u_rss, 1),
               "batch_ms_per_clip": round(1000 * el / len(batch), 1), "batch_rss_mb": round(b_rss, 1)}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    with open(os.path.join(cache, "results-scale.json"), "w") as f:
        json.dump({"commit": commit, "date": time.strftime("%Y-%m-%d"), "runs": args.runs, "rows": rows}, f, indent=1)
    print(f"Scale (commit {commit}; whole process, median of {args.runs} runs x 5 clips; batch of {len(batch)} clips)\n")
    print("| index | hours | MB on disk | MB/h | build s | known 10 s ms | unknown 10 s ms | peak RSS MB (known/unknown/batch) | batch ms/clip |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['hours']:.1f} | {r['bytes'] / 1e6:.1f} | {r['mb_per_hour']} | "
              f"{'-' if r['build_s'] is None else r['build_s']} | {r['known_ms']} | {r['unknown_ms']} | "
              f"{r['known_rss_mb']:.0f}/{r['unknown_rss_mb']:.0f}/{r['batch_rss_mb']:.0f} | {r['batch_ms_per_clip']} |")


if __name__ == "__main__":
    main()
