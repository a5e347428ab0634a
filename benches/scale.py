#!/usr/bin/env python3
"""How a query's cost grows with the library: the evaluation index (6 h of
real audio) and simulated libraries of more hours.

    python3 benches/scale.py [--hours 100,1000] [--runs 10] [--cache DIR]
    python3 benches/scale.py --plot-only [--plot docs/scale.svg]

Needs the evaluation's base index and clips (run `benches/eval.py --half tune
--size base` first). A simulated library is the evaluation index plus copies
of its tracks whose hashes are remapped by a per-copy bijection
(`examples/simulate_library.rs`: real postings, real density, written through
the store's own commit and merge path; no decoding). For each size: the
index's size and build time, whole-process `ostid match` of one 10 s clip
(known and unknown; median of RUNS runs over 5 clips each, OS cache warm),
peak RSS of those, and a batch of 40 + 40 clips in one process (seconds per
clip, decoding included). Release build, 2 threads. Writes the table, and a
log-log plot of cost against hours (with the gates) as SVG (`--plot`);
`--plot-only` redraws it from the last results. `--existing` measures the
simulated indexes already in the cache as they are (no build, no
compaction: a 10,000 h index takes ~50 min to build). `--reindex` also times
`ostid index` over an unchanged simulated library: the copies' records name
files under /simulated/copy-K/..., which it creates as hard links to the
real files (same size and time; needs write access to /simulated).
"""
import argparse, json, math, os, statistics, subprocess, sys, time

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


def plot(results, out):
    """Log-log SVG: whole-process ms (known, unknown), batch ms per clip and
    peak RSS MB against indexed hours, with the gates as dashed steps."""
    # The library as a user leaves it after `ostid compact`, where measured.
    rows = [r for r in results["rows"]
            if "compacted" in r["size"] or not any(c["size"] == r["size"] + ", compacted" for c in results["rows"])]
    W, H, L, R, T, B = 640, 400, 70, 150, 30, 50
    x0, x1 = 1.0, 4.0            # log10 hours: 10 h .. 10,000 h
    y0, y1 = 0.0, 4.0            # log10 of ms or MB: 1 .. 10,000

    def px(h):
        return L + (math.log10(h) - x0) / (x1 - x0) * (W - L - R)

    def py(v):
        v = min(max(v, 10 ** y0), 10 ** y1)
        return T + (y1 - math.log10(v)) / (y1 - y0) * (H - T - B)

    g = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
         f'<rect width="{W}" height="{H}" fill="white"/>']
    for e in range(int(x0), int(x1) + 1):
        x = px(10 ** e)
        g.append(f'<line x1="{x:.1f}" y1="{T}" x2="{x:.1f}" y2="{H - B}" stroke="#ddd"/>')
        g.append(f'<text x="{x:.1f}" y="{H - B + 15}" text-anchor="middle">{10 ** e:,} h</text>')
    for e in range(int(y0), int(y1) + 1):
        y = py(10 ** e)
        g.append(f'<line x1="{L}" y1="{y:.1f}" x2="{W - R}" y2="{y:.1f}" stroke="#ddd"/>')
        g.append(f'<text x="{L - 6}" y="{y + 4:.1f}" text-anchor="end">{10 ** e:,}</text>')
    g.append(f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">indexed hours (log)</text>')
    g.append(f'<text x="14" y="{(T + H - B) / 2}" transform="rotate(-90 14 {(T + H - B) / 2})" '
             f'text-anchor="middle">ms, or MB for RSS (log)</text>')
    series = [("known 10 s, ms", "known_ms", "#1f77b4"), ("unknown 10 s, ms", "unknown_ms", "#d62728"),
              ("batch, ms per clip", "batch_ms_per_clip", "#2ca02c"), ("peak RSS, MB", "unknown_rss_mb", "#9467bd")]
    for i, (name, key, colour) in enumerate(series):
        pts = [(max(r["hours"], 10 ** x0), r[key]) for r in rows if r.get(key)]
        path = " ".join(f"{px(h):.1f},{py(v):.1f}" for h, v in pts)
        g.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for h, v in pts:
            g.append(f'<circle cx="{px(h):.1f}" cy="{py(v):.1f}" r="3" fill="{colour}"/>')
        y = T + 10 + 18 * i
        g.append(f'<line x1="{W - R + 10}" y1="{y}" x2="{W - R + 30}" y2="{y}" stroke="{colour}" stroke-width="2"/>')
        g.append(f'<text x="{W - R + 35}" y="{y + 4}">{name}</text>')
    # Gates, one clip: 50 ms at 6 h (drawn at 10 h), 100 at 1,000 h, 200 at 10,000 h.
    path = " ".join(f"{px(h):.1f},{py(v):.1f}" for h, v in [(10, 50), (1000, 100), (10000, 200)])
    g.append(f'<polyline points="{path}" fill="none" stroke="black" stroke-dasharray="5,4"/>')
    g.append(f'<line x1="{px(10):.1f}" y1="{py(100):.1f}" x2="{px(10000):.1f}" y2="{py(100):.1f}" '
             f'stroke="#9467bd" stroke-dasharray="2,3"/>')
    y = T + 10 + 18 * len(series)
    g.append(f'<line x1="{W - R + 10}" y1="{y}" x2="{W - R + 30}" y2="{y}" stroke="black" stroke-dasharray="5,4"/>')
    g.append(f'<text x="{W - R + 35}" y="{y + 4}">gate, one clip</text>')
    g.append(f'<line x1="{W - R + 10}" y1="{y + 18}" x2="{W - R + 30}" y2="{y + 18}" stroke="#9467bd" '
             f'stroke-dasharray="2,3"/>')
    g.append(f'<text x="{W - R + 35}" y="{y + 22}">gate, RSS</text>')
    g.append(f'<text x="{L}" y="{T - 10}">ostid match, whole process (commit {results["commit"]}); '
             f'compacted; the evaluation index is drawn at 10 h</text>')
    g.append("</svg>")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        f.write("\n".join(g) + "\n")


def reindex(ostid, db):
    """Seconds, peak RSS MB and the summary of `ostid index` over hard links
    standing for the copies' files (nothing to decode)."""
    out = subprocess.run([ostid, "--db", db, "list", "--json"], capture_output=True, text=True,
                         check=True).stdout
    copies = {}
    for line in out.splitlines():
        path = json.loads(line)["path"]
        if path.startswith("/simulated/"):
            copies.setdefault(path.split("/")[2], []).append(path)
            if not os.path.exists(path):
                os.makedirs(os.path.dirname(path), exist_ok=True)
                os.link("/" + path.split("/", 3)[3], path)
    # Whole copies by folder; the last, partial one (a larger size's links
    # share its folder) file by file.
    whole = max(len(p) for p in copies.values())
    roots = []
    for k, paths in copies.items():
        roots += [f"/simulated/{k}"] if len(paths) == whole else paths
    cmd = [ostid, "--db", db, "index"] + roots
    ev.timed(cmd)  # warm the OS cache
    _, err, el, rss = ev.timed(cmd)
    return el, rss, err.strip().splitlines()[-2]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default=os.path.join(ROOT, "cache"))
    ap.add_argument("--hours", default="100,1000", help="simulated sizes, comma-separated")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--no-compact", action="store_true",
                    help="measure simulated libraries only as `index` leaves them, not also after `ostid compact`")
    ap.add_argument("--compacted-only", action="store_true",
                    help="measure simulated libraries only after `ostid compact` (for the largest sizes)")
    ap.add_argument("--append", action="store_true",
                    help="add the rows to the last results rather than replace them (base not measured again)")
    ap.add_argument("--existing", action="store_true",
                    help="measure the simulated indexes in the cache as they are (no build, no compaction)")
    ap.add_argument("--reindex", action="store_true",
                    help="also time re-indexing the unchanged simulated library (writes hard links under /simulated)")
    ap.add_argument("--plot", default=os.path.join(ROOT, "docs", "scale.svg"), help="SVG plot to write")
    ap.add_argument("--plot-only", action="store_true", help="redraw the plot from the last results")
    args = ap.parse_args()
    cache = os.path.abspath(args.cache)
    if args.plot_only:
        with open(os.path.join(cache, "results-scale.json")) as f:
            plot(json.load(f), args.plot)
        return
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
    sizes = [] if args.append else [("base", None, False)]
    for h in (h for h in args.hours.split(",") if h):
        if args.existing:
            db = os.path.join(cache, f"db-scale-{float(h):g}h")
            one = len(os.listdir(os.path.join(db, "postings"))) == 1
            sizes.append((f"{h} h" + (", compacted" if one else ""), float(h), None))
            continue
        if not args.compacted_only:
            sizes.append((f"{h} h", float(h), False))
        if not args.no_compact:
            sizes.append((f"{h} h, compacted", float(h), True))
    for name, hours, compacted in sizes:
        db, build_s, compact_s, compact_rss = base, None, None, None
        if hours is not None:
            db = os.path.join(cache, f"db-scale-{hours:g}h")
        if hours is not None and compacted is not None and (not compacted or args.compacted_only):
            subprocess.run(["rm", "-rf", db], check=True)
            t = time.time()
            ev.run([simulate, base, db, str(hours)])
            build_s = time.time() - t
        if compacted:
            _, _, compact_s, compact_rss = ev.timed([ostid, "--db", db, "-q", "compact"])
        files = len(os.listdir(os.path.join(db, "postings")))
        stats = json.loads(subprocess.run([ostid, "--db", db, "stats", "--json"], capture_output=True,
                                          text=True, check=True).stdout)
        nbytes = int(subprocess.run(["du", "-sb", db], capture_output=True, text=True).stdout.split()[0])
        k_ms, k_rss = whole_process(ostid, db, known, args.runs)
        u_ms, u_rss = whole_process(ostid, db, unknown, args.runs)
        _, _, el, b_rss = ev.timed([ostid, "--db", db, "-q", "match", "--json", "-j", "2", "--from-file", listfile])
        row = {"size": name, "hours": stats["hours"], "tracks": stats["tracks"], "bytes": nbytes, "files": files,
               "compact_s": None if compact_s is None else round(compact_s, 1),
               "compact_rss_mb": None if compact_rss is None else round(compact_rss, 1),
               "mb_per_hour": round(nbytes / 1e6 / stats["hours"], 2),
               "build_s": None if build_s is None else round(build_s, 1),
               "known_ms": round(k_ms, 1), "known_rss_mb": round(k_rss, 1),
               "unknown_ms": round(u_ms, 1), "unknown_rss_mb": round(u_rss, 1),
               "batch_ms_per_clip": round(1000 * el / len(batch), 1), "batch_rss_mb": round(b_rss, 1)}
        if args.reindex and hours is not None:
            r_s, r_rss, summary = reindex(ostid, db)
            row.update({"reindex_s": round(r_s, 2), "reindex_rss_mb": round(r_rss, 1), "reindex": summary})
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    if args.append:
        with open(os.path.join(cache, "results-scale.json")) as f:
            rows = json.load(f)["rows"] + rows
    results = {"commit": commit, "date": time.strftime("%Y-%m-%d"), "runs": args.runs, "rows": rows}
    with open(os.path.join(cache, "results-scale.json"), "w") as f:
        json.dump(results, f, indent=1)
    plot(results, args.plot)
    print(f"Scale (commit {commit}; whole process, median of {args.runs} runs x 5 clips; batch of {len(batch)} clips)\n")
    print("| index | hours | files | MB on disk | MB/h | built (compacted) in s | known 10 s ms | unknown 10 s ms | peak RSS MB (known/unknown/batch) | batch ms/clip |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        built = r["build_s"] if r["build_s"] is not None else (
            f"({r['compact_s']}, {r['compact_rss_mb']:.0f} MB)" if r["compact_s"] is not None else "-")
        print(f"| {r['size']} | {r['hours']:.1f} | {r['files']} | {r['bytes'] / 1e6:.1f} | {r['mb_per_hour']} | "
              f"{built} | {r['known_ms']} | {r['unknown_ms']} | "
              f"{r['known_rss_mb']:.0f}/{r['unknown_rss_mb']:.0f}/{r['batch_rss_mb']:.0f} | {r['batch_ms_per_clip']} |")
    for r in rows:
        if "reindex_s" in r:
            print(f"\nRe-index of the unchanged {r['size']} library: {r['reindex_s']} s, "
                  f"{r['reindex_rss_mb']:.0f} MB ({r['reindex']})")


if __name__ == "__main__":
    main()
