#!/usr/bin/env python3
"""Benchmark of `ostid scan` on long recordings built from the evaluation
library (the same corpus, split and index as benches/eval.py).

    python3 benches/scan.py [--cache DIR] [--seed N] [--db PATH] [--lengths 1h,10min,2h]

Builds a one-hour "episode": cues of indexed tracks (15-90 s, from anywhere
in the track), some under espeak-ng speech at the music's level, some
cross-faded (3 s) into the next, some reprised later, separated by silence
and by held-out (unknown) music. Scans it with the release build on 2 threads
and reports segment recall and precision (a cue is found when a segment of
the same piece overlaps it by half its length or more; a segment is right
when it so overlaps a cue), the median boundary error of found cues, the
speed in x real time, and the peak RSS of scanning a 10-minute and a 2-hour
recording made the same way.

`--db` scans against another index holding the same indexed tracks (a
simulated library of `benches/scale.py`, for `scan` at scale); results then
go to results-scan-<index name>.json (results-scan-unknown-<half>-<index name>.json
with `--unknown`).
"""
import argparse, json, os, random, statistics, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import corpus  # noqa: E402
import eval as ev  # noqa: E402

RATE = ev.RATE


def build(cache, indexed, held, seconds, seed, out):
    """Write a recording of about `seconds`; returns its cues."""
    import numpy as np
    truth_file = out + ".json"
    if os.path.exists(out) and os.path.exists(truth_file):
        with open(truth_file) as f:
            return json.load(f)
    rng = random.Random(seed)
    speech = ev.speech_track(cache)
    pcm = {}

    def audio(path):
        if path not in pcm:
            pcm[path] = ev.pcm_of(cache, path)
        return pcm[path]

    parts, cues, t = [], [], 0.0
    played = []
    while t < seconds:
        gap = rng.choice(["silence", "unknown", "none"])
        if gap == "silence":
            n = rng.uniform(1.0, 6.0)
            parts.append(np.zeros(int(n * RATE), dtype=np.float32))
            t += n
        elif gap == "unknown":
            x = audio(rng.choice(held))
            n = min(rng.uniform(8.0, 40.0), len(x) / RATE - 1)
            a = rng.uniform(0, len(x) / RATE - n)
            parts.append(x[int(a * RATE):int(a * RATE) + int(n * RATE)] * 0.8)
            t += n
        # A cue: sometimes a reprise of an earlier one.
        if played and rng.random() < 0.15:
            path, a, n = rng.choice(played)
        else:
            path = rng.choice(indexed)
            x = audio(path)
            n = min(rng.uniform(15.0, 90.0), len(x) / RATE - 1)
            if n < 8:
                continue
            a = rng.uniform(0, len(x) / RATE - n)
            played.append((path, a, n))
        seg = audio(path)[int(a * RATE):int(a * RATE) + int(n * RATE)].copy()
        kind = rng.choice(["plain", "plain", "speech", "crossfade"])
        if kind == "speech":
            s0 = rng.randrange(0, max(1, len(speech) - len(seg)))
            sp = np.resize(speech[s0:], len(seg))
            seg = seg + sp * (ev.rms(seg) / max(ev.rms(sp), 1e-9))
        start = t
        if kind == "crossfade" and parts and len(parts[-1]) > 3 * RATE and cues and cues[-1]["end_s"] == t:
            # Fade the previous cue out over 3 s while this one fades in;
            # the cut between them is mid-fade.
            f = 3 * RATE
            ramp = np.linspace(0, 1, f, dtype=np.float32)
            parts[-1][-f:] *= ramp[::-1]
            seg[:f] *= ramp
            head = parts[-1][-f:] + seg[:f]
            parts[-1] = parts[-1][:-f]
            parts.append(head)
            parts.append(seg[f:])
            start = t - 1.5
            cues[-1]["end_s"] = round(start, 3)
            t = t - 3.0 + n
        else:
            parts.append(seg)
            t += n
        cues.append({"path": path, "piece": ev.piece_of(path), "start_s": round(start, 3),
                     "end_s": round(t, 3), "track_start_s": round(a + (start - (t - n)), 3), "kind": kind})
    x = np.concatenate(parts)
    ev.write_wav(out, x / max(1e-9, float(np.max(np.abs(x)))) * 0.9)
    with open(truth_file, "w") as f:
        json.dump(cues, f)
    return cues


def build_unknown(cache, pool, seconds, seed, out):
    """Write a recording of about `seconds` of music none of which is
    indexed (pieces of 15-90 s from `pool`), half of it under espeak-ng
    speech at the music's level, separated by short silences."""
    import numpy as np
    if os.path.exists(out):
        return
    rng = random.Random(seed)
    speech = ev.speech_track(cache)
    parts, t = [], 0.0
    while t < seconds:
        x = ev.pcm_of(cache, rng.choice(pool))
        n = min(rng.uniform(15.0, 90.0), len(x) / RATE - 1)
        if n < 8:
            continue
        a = rng.uniform(0, len(x) / RATE - n)
        seg = x[int(a * RATE):int(a * RATE) + int(n * RATE)].copy()
        if rng.random() < 0.5:
            s0 = rng.randrange(0, max(1, len(speech) - len(seg)))
            sp = np.resize(speech[s0:], len(seg))
            seg = seg + sp * (ev.rms(seg) / max(ev.rms(sp), 1e-9))
        gap = rng.uniform(0.5, 4.0)
        parts += [seg, np.zeros(int(gap * RATE), dtype=np.float32)]
        t += n + gap
    x = np.concatenate(parts)
    ev.write_wav(out, x / max(1e-9, float(np.max(np.abs(x)))) * 0.9)


def score(cues, segs):
    def overlap(c, s):
        return max(0.0, min(c["end_s"], s["end_s"]) - max(c["start_s"], s["start_s"]))

    found, errors = 0, []
    for c in cues:
        best = max((s for s in segs if ev.piece_of(s["path"]) == c["piece"]),
                   key=lambda s: overlap(c, s), default=None)
        if best and overlap(c, best) >= 0.5 * (c["end_s"] - c["start_s"]):
            found += 1
            errors += [abs(best["start_s"] - c["start_s"]), abs(best["end_s"] - c["end_s"])]
    right = sum(1 for s in segs if any(
        ev.piece_of(s["path"]) == c["piece"] and overlap(c, s) >= 0.5 * min(c["end_s"] - c["start_s"], s["end_s"] - s["start_s"])
        for c in cues))
    return {
        "cues": len(cues), "segments": len(segs),
        "recall": round(found / len(cues), 3) if cues else None,
        "precision": round(right / len(segs), 3) if segs else None,
        "boundary_error_median_s": round(statistics.median(errors), 2) if errors else None,
        "boundary_error_p90_s": round(sorted(errors)[int(0.9 * (len(errors) - 1))], 2) if errors else None,
    }


def scan(ostid, db, wav):
    out, _, el, rss = ev.timed([ostid, "--db", db, "-q", "scan", "--json", wav])
    return [json.loads(line) for line in out.splitlines()], el, rss


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default=os.path.join(ROOT, "cache"))
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--db", help="scan against this index instead of the benchmark's own")
    ap.add_argument("--lengths", default="1h,10min,2h", help="recordings to scan, of 1h, 10min, 2h")
    ap.add_argument("--unknown", choices=["tune", "report"],
                    help="instead: scan a 2-hour recording of that half's unknown music (none of it indexed, "
                         "half under speech) and count the segments named (every one a false positive)")
    args = ap.parse_args()
    cache = os.path.abspath(args.cache)
    ev.ensure_tools()
    lib = corpus.build(cache)
    files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(lib) for f in fs)
    indexed, held = ev.split(files)
    ev.run(["cargo", "build", "--release", "-q", "--bin", "ostid"], cwd=ROOT)
    ostid = os.path.join(ROOT, "target", "release", "ostid")
    db = os.path.abspath(args.db) if args.db else os.path.join(cache, "db-scan")
    if not args.db and not os.path.exists(db):
        ev.run([ostid, "--db", db, "-q", "index", "-j", "2"] + indexed)
    sdir = os.path.join(cache, "scan")
    os.makedirs(sdir, exist_ok=True)
    if args.unknown:
        unk = corpus.build_unknown(cache)
        pool = sorted(p for p in held + [os.path.join(dp, f) for dp, _, fs in os.walk(unk) for f in fs]
                      if ev.half_of(p) == args.unknown)
        wav = os.path.join(sdir, f"unknown-{args.unknown}-2h-{args.seed}.wav")
        build_unknown(cache, pool, 7200, args.seed, wav)
        segs, el, rss = scan(ostid, db, wav)
        audio_s = os.path.getsize(wav) / 2 / RATE
        windows = int(audio_s / 4)
        r = {"half": args.unknown, "db": os.path.basename(db), "tracks": len(pool), "works": len({os.path.dirname(p) for p in pool}),
             "audio_s": round(audio_s, 1), "windows": windows, "segments_named": len(segs),
             "named_s": round(sum(s["end_s"] - s["start_s"] for s in segs), 1),
             "x_real_time": round(audio_s / el, 1), "peak_rss_mb": round(rss, 1),
             "named": [(s["title"], s["work"], s["start_s"], s["end_s"], s["confidence"]) for s in segs]}
        print(json.dumps(r, indent=1))
        suffix = f"-{os.path.basename(db)}" if args.db else ""
        with open(os.path.join(cache, f"results-scan-unknown-{args.unknown}{suffix}.json"), "w") as f:
            json.dump(r, f, indent=1)
        return
    results = {}
    lengths = args.lengths.split(",")
    for name, seconds in (("1h", 3600), ("10min", 600), ("2h", 7200)):
        if name not in lengths:
            continue
        wav = os.path.join(sdir, f"episode-{name}-{args.seed}.wav")
        cues = build(cache, indexed, held, seconds, args.seed + seconds, wav)
        duration = cues[-1]["end_s"]
        segs, el, rss = scan(ostid, db, wav)
        r = score(cues, segs)
        r.update({"audio_s": round(duration, 1), "scan_s": round(el, 2),
                  "x_real_time": round(duration / el, 1), "peak_rss_mb": round(rss, 1)})
        results[name] = r
        print(name, json.dumps(r), flush=True)
    suffix = f"-{os.path.basename(db)}" if args.db else ""
    with open(os.path.join(cache, f"results-scan{suffix}.json"), "w") as f:
        json.dump(results, f, indent=1)
    if set(results) != {"1h", "10min", "2h"}:
        return
    one = results["1h"]
    print("\n| metric | value |\n|---|---|")
    print(f"| one-hour recording | {one['cues']} cues, {one['segments']} segments |")
    print(f"| segment recall / precision | {one['recall']} / {one['precision']} |")
    print(f"| boundary error, median (p90) | {one['boundary_error_median_s']} s ({one['boundary_error_p90_s']} s) |")
    print(f"| speed | {one['x_real_time']}x real time ({one['scan_s']} s) |")
    print(f"| peak RSS, 10 min / 1 h / 2 h | {results['10min']['peak_rss_mb']} / {one['peak_rss_mb']} / {results['2h']['peak_rss_mb']} MB |")


if __name__ == "__main__":
    main()
