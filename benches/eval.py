#!/usr/bin/env python3
"""ostid evaluation on real soundtracks: accuracy under damage, false
positives, speed, index size and memory, against the gates in DEVELOPERS.md.

    python3 benches/eval.py                 # the reporting half, both library sizes
    python3 benches/eval.py --half tune     # the tuning half: choose rules here
    python3 benches/eval.py --quick         # fewer clips per cell

Works are split into a tuning half and a reporting half (TUNE_WORKS): rules,
thresholds and the confidence model are chosen on the first and reported on
the second. Positives come from the indexed pieces of the evaluation
library; unknown clips from its held-out pieces and from 14 works that are
never indexed. Each half is matched against the evaluation library and
against it plus ~35 h of speed-changed copies (`--size`).

Rebuilds corpus, clips and table from scratch on a fresh machine (installs
ffmpeg, sox, espeak-ng and numpy if missing); a second run reuses the cache
(default ./cache, never committed). Writes a Markdown report to stdout, JSON
to CACHE/results-PRESET-SIZE-HALF.json and every answer to
CACHE/answers-PRESET-SIZE.jsonl.
"""
import argparse, hashlib, json, os, random, re, shutil, statistics, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import corpus  # noqa: E402

RATE = 22050
LENGTHS = [3, 5, 10]
DEGRADATIONS = ["clean", "mp3_64k", "pink_0db", "pink_-5db", "dialogue",
                "speed_+4", "speed_-4", "speed_+8", "speed_-8",
                "tempo_+5", "tempo_-5", "pitch_+1", "pitch_-1"]
SPEECH = [
    "I told you we should never have come back to this place. The gate was open when we arrived.",
    "Listen to me. The signal came from the northern ridge, and nobody has answered since midnight.",
    "We have maybe ten minutes before they notice. Take the left corridor and do not look back.",
    "She said the old city was empty, but I can still hear the machines running under the streets.",
]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def ensure_tools():
    missing = [t for t in ("ffmpeg", "sox", "espeak-ng") if shutil.which(t) is None]
    if missing or not os.path.exists("/usr/bin/time"):
        run(["apt-get", "update", "-qq"])
        run(["apt-get", "install", "-y", "-qq", "ffmpeg", "sox", "libsox-fmt-mp3", "espeak-ng", "time"],
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    try:
        import numpy  # noqa: F401
    except ImportError:
        run([sys.executable, "-m", "pip", "install", "-q", "numpy"])


# Versions whose names do not show it. Colobot's Gold Edition remakes two
# pieces of the original soundtrack, as their titles say ("Infinite Storm v2"
# of "Infinite Thunderstorm" (music008), "Humanitarian v2 - The Box" of
# "Humanitarian"), and ostid finds their shared passages at the same offsets.
VERSIONS = {"Colobot/infinite": "Colobot/music008", "Colobot/hv2": "Colobot/humanitarian"}


def piece_of(path):
    """Versions of one piece share a key: track3 / track3_enhanced, menu / menu_enhanced,
    and the extra library's speed-changed copies (Work x1.12/track3.opus.flac)."""
    name = os.path.basename(path)
    work = os.path.basename(os.path.dirname(path))
    copy = re.fullmatch(r"(.+) x\d\.\d\d", work)
    if copy:
        work, name = copy.group(1), os.path.splitext(name)[0]
    stem = os.path.splitext(name)[0].lower()
    stem = re.sub(r"_(enhanced|[a-z]+_soundtrack)$", "", stem)
    key = work + "/" + stem
    return VERSIONS.get(key, key)


def split(files):
    indexed, held = [], []
    for f in files:
        h = int(hashlib.sha1(piece_of(f).encode()).hexdigest(), 16)
        (held if h % 5 == 0 else indexed).append(f)
    return indexed, held


def pcm_of(cache, path):
    import numpy as np
    out = os.path.join(cache, "pcm", hashlib.sha1(path.encode()).hexdigest()[:16] + ".raw")
    if not os.path.exists(out):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        run(["ffmpeg", "-v", "error", "-y", "-i", path, "-ac", "1", "-ar", str(RATE),
             "-f", "s16le", out + ".tmp"])
        os.rename(out + ".tmp", out)
    return np.fromfile(out, dtype=np.int16).astype(np.float32) / 32768.0


def write_wav(path, x):
    import numpy as np
    import wave
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype(np.int16).tobytes())


def rms(x):
    import numpy as np
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)) + 1e-12)


def pink(n, rng):
    import numpy as np
    white = rng.standard_normal(n)
    spec = np.fft.rfft(white)
    f = np.arange(len(spec))
    f[0] = 1
    spec /= np.sqrt(f)
    p = np.fft.irfft(spec, n)
    return (p / rms(p)).astype(np.float32)


def speech_track(cache):
    import numpy as np
    out = os.path.join(cache, "speech.raw")
    if not os.path.exists(out):
        parts = []
        for i, text in enumerate(SPEECH):
            wav = os.path.join(cache, f"speech{i}.wav")
            run(["espeak-ng", "-s", "150", "-v", ["en", "en-us", "en+f3", "en+m3"][i], "-w", wav, text])
            raw = wav + ".raw"
            run(["ffmpeg", "-v", "error", "-y", "-i", wav, "-ac", "1", "-ar", str(RATE), "-f", "s16le", raw])
            parts.append(np.fromfile(raw, dtype=np.int16).astype(np.float32) / 32768.0)
            parts.append(np.zeros(int(0.4 * RATE), dtype=np.float32))
        np.concatenate(parts).astype(np.int16 if False else np.float32).tofile(out)
    return np.fromfile(out, dtype=np.float32)


def make_clip(cache, kind, music, out_base, rng, nprng, speech):
    """Write a degraded clip; returns its path."""
    import numpy as np
    wav = out_base + ".wav"
    if kind == "clean":
        write_wav(wav, music)
        return wav
    if kind == "mp3_64k":
        write_wav(wav, music)
        mp3 = out_base + ".mp3"
        run(["ffmpeg", "-v", "error", "-y", "-i", wav, "-b:a", "64k", mp3])
        os.remove(wav)
        return mp3
    if kind.startswith("pink_"):
        snr = float(kind[5:-2])
        noise = pink(len(music), nprng) * rms(music) / (10 ** (snr / 20))
        write_wav(wav, 0.5 * (music + noise) / max(1e-9, np.max(np.abs(music + noise))) * 1.6)
        return wav
    if kind == "dialogue":
        start = rng.randrange(0, max(1, len(speech) - len(music)))
        sp = np.resize(speech[start:], len(music)) if len(speech) - start < len(music) else speech[start:start + len(music)]
        # Speech 6 dB over the music, measured on the whole clip.
        sp = sp * (rms(music) / rms(sp)) * (10 ** (6 / 20))
        mix = music + sp
        write_wav(wav, mix / max(1e-9, np.max(np.abs(mix))) * 0.9)
        return wav
    src = out_base + ".src.wav"
    write_wav(src, music)
    effect = {
        "speed_+4": ["speed", "1.04"], "speed_-4": ["speed", "0.96"],
        "tempo_+5": ["tempo", "1.05"], "tempo_-5": ["tempo", "0.95"],
        "speed_+8": ["speed", "1.08"], "speed_-8": ["speed", "0.92"],
        "pitch_+1": ["pitch", "100"], "pitch_-1": ["pitch", "-100"],
    }[kind]
    run(["sox", "-q", "-V1", src, "-r", str(RATE), wav] + effect)
    os.remove(src)
    return wav


# Every work belongs to one half. Rules, thresholds and the confidence model
# are chosen on the tuning half; the tables are reported on the other.
# Library works give the positives (and their held-out pieces unknown clips);
# the unknown works are never indexed.
TUNE_WORKS = {"Drascula", "Advanced Strategic Command",
              "SuperTux", "Frozen Bubble", "OpenClonk", "Planet Blupi",
              "Endgame: Singularity", "Pushover", "X-Moto"}
# Damage kinds of the unknown clips: the plain case, and those that send a
# clip through the warp search and the close look.
UNKNOWN_KINDS = ["clean", "mp3_64k", "pink_0db", "dialogue", "speed_+4", "pitch_+1"]


def half_of(path):
    return "tune" if os.path.basename(os.path.dirname(path)) in TUNE_WORKS else "report"


def build_queries(cache, indexed, unknown, counts, seed):
    """Clips per (half, group, damage kind), each seeded on its own and
    cached in its own manifest. `counts[(half, group)]` is the number of
    clips per length; unknown clips go round the pool's tracks so that
    every track gives clips."""
    import numpy as np
    qdir = os.path.join(cache, f"queries-v2-{seed}")
    os.makedirs(qdir, exist_ok=True)
    speech = None
    pcm = {}
    clips = []
    pools = {}
    for path in indexed:
        pools.setdefault((half_of(path), "known"), []).append(path)
    for path in unknown:
        pools.setdefault((half_of(path), "unknown"), []).append(path)

    for (half, group), n in sorted(counts.items()):
        pool = sorted(pools.get((half, group), []))
        kinds = DEGRADATIONS if group == "known" else UNKNOWN_KINDS
        for kind in kinds:
            manifest = os.path.join(qdir, f"manifest-{half}-{group}-{kind}-{n}.json")
            if os.path.exists(manifest):
                with open(manifest) as f:
                    clips += json.load(f)
                continue
            if speech is None:
                speech = speech_track(cache)
            tag = int(hashlib.sha256(f"{seed}-{half}-{group}-{kind}".encode()).hexdigest()[:8], 16)
            rng = random.Random(tag)
            nprng = np.random.default_rng(tag)
            order = pool[:]
            rng.shuffle(order)

            def pick(i, length):
                for k in range(200):
                    path = order[(i + k) % len(order)] if group == "unknown" else rng.choice(order)
                    if path not in pcm:
                        pcm[path] = pcm_of(cache, path)
                    x = pcm[path]
                    if len(x) < (length + 1) * RATE:
                        continue
                    start = rng.uniform(0, len(x) / RATE - length - 0.5)
                    seg = x[int(start * RATE):int(start * RATE) + length * RATE]
                    if 20 * np.log10(rms(seg)) > -50:  # not near-silent
                        return path, start, seg
                raise RuntimeError("no loud enough clip found")

            kclips = []
            for length in LENGTHS:
                for i in range(n):
                    path, start, seg = pick(i, length)
                    base = os.path.join(qdir, f"{half}_{group}_{kind}_{length}s_{i:04d}")
                    q = make_clip(cache, kind, seg, base, rng, nprng, speech)
                    kclips.append({"query": q, "half": half, "group": group, "kind": kind,
                                   "length": length, "path": path, "work": os.path.basename(os.path.dirname(path)),
                                   "piece": piece_of(path), "offset_s": round(start, 3)})
            with open(manifest + ".tmp", "w") as f:
                json.dump(kclips, f)
            os.replace(manifest + ".tmp", manifest)
            print(f"clips: {half} {group} {kind}: {len(kclips)}", file=sys.stderr)
            clips += kclips
    return clips


def timed(cmd, **kw):
    """Run under /usr/bin/time; returns (stdout, stderr, seconds, peak RSS MB)."""
    t = time.time()
    p = subprocess.run(["/usr/bin/time", "-f", "__RSS_KB %M"] + cmd, capture_output=True, text=True, **kw)
    el = time.time() - t
    m = re.search(r"__RSS_KB (\d+)", p.stderr)
    if p.returncode not in (0, 1):
        sys.stderr.write(p.stderr)
        raise RuntimeError(f"{cmd[0]} exited {p.returncode}")
    return p.stdout, p.stderr, el, (int(m.group(1)) / 1024 if m else None)


def pct(a, b):
    return 100.0 * a / b if b else float("nan")


def wilson_upper(k, n, z=1.96):
    """95 % upper bound of a rate of k in n (Wilson score interval)."""
    if n == 0:
        return float("nan")
    p = k / n
    centre = p + z * z / (2 * n)
    margin = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5)
    return 100.0 * (centre + margin) / (1 + z * z / n)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer clips per cell")
    ap.add_argument("--cache", default=os.path.join(ROOT, "cache"))
    ap.add_argument("--preset", default="default", help="fingerprint preset")
    ap.add_argument("--half", choices=["tune", "report", "both"], default="report",
                    help="which half of the works to match and report (default: report)")
    ap.add_argument("--size", choices=["base", "large", "both"], default="both",
                    help="library size: the evaluation library, or with the extra ~35 h indexed too")
    ap.add_argument("--clips-only", action="store_true", help="build corpus and clips, match nothing")
    ap.add_argument("--rescore", action="store_true",
                    help="score the answers of the last run again (CACHE/answers-*.jsonl) and print the tables")
    ap.add_argument("--max-chance", help="passed to `ostid match` (a loose value for benches/tune.py)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    cache = os.path.abspath(args.cache)
    os.makedirs(cache, exist_ok=True)
    if args.rescore:
        for size in ["base", "large"] if args.size == "both" else [args.size]:
            rescore(cache, args.preset, size, args.half)
        return
    ensure_tools()
    halves = ["tune", "report"] if args.half == "both" else [args.half]
    per_cell = {("tune", "known"): 20 if args.quick else 50, ("report", "known"): 30 if args.quick else 100,
                ("tune", "unknown"): 40 if args.quick else 120, ("report", "unknown"): 40 if args.quick else 120}

    lib = corpus.build(cache)
    files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(lib) for f in fs)
    indexed, held = split(files)
    unk = corpus.build_unknown(cache)
    unknown = held + sorted(os.path.join(dp, f) for dp, _, fs in os.walk(unk) for f in fs)
    counts = {k: v for k, v in per_cell.items() if k[0] in halves}
    clips = build_queries(cache, indexed, unknown, counts, args.seed)
    sizes = ["base", "large"] if args.size == "both" else [args.size]
    extra = corpus.build_extra(cache, indexed, args.threads) if "large" in sizes else None
    if args.clips_only:
        return
    run(["cargo", "build", "--release", "-q", "--bin", "ostid", "--example", "decode_only"], cwd=ROOT)
    ostid = os.path.join(ROOT, "target", "release", "ostid")
    decode_only = os.path.join(ROOT, "target", "release", "examples", "decode_only")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    works = lambda paths: len({os.path.dirname(p) for p in paths})
    for size in sizes:
        r = evaluate(ostid, decode_only, cache, args.preset, size, indexed, extra, clips, args.threads,
                     args.max_chance)
        r.update(commit=commit, date=time.strftime("%Y-%m-%d"), mode="quick" if args.quick else "full",
                 held_out_tracks=len(held),
                 unknown_tracks={h: len([u for u in unknown if half_of(u) == h]) for h in halves},
                 unknown_works={h: works([u for u in unknown if half_of(u) == h]) for h in halves})
        name = f"results-{args.preset}-{size}-{args.half}.json"
        with open(os.path.join(cache, name), "w") as f:
            json.dump(r, f, indent=1)
        report(r)


def rescore(cache, preset, size, half):
    """Tables of a finished run again, from its answers (after a change to
    how answers are scored, such as which files are versions of a piece)."""
    with open(os.path.join(cache, f"results-{preset}-{size}-{half}.json")) as f:
        r = json.load(f)
    pairs = []
    with open(os.path.join(cache, f"answers-{preset}-{size}.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            pairs.append((row["clip"], row["answer"]))
    r["halves"] = {h: score([(c, a) for c, a in pairs if c["half"] == h])
                   for h in sorted({c["half"] for c, _ in pairs})}
    with open(os.path.join(cache, f"results-{preset}-{size}-{half}.json"), "w") as f:
        json.dump(r, f, indent=1)
    report(r)


def index_db(ostid, db, preset, threads, paths):
    shutil.rmtree(db, ignore_errors=True)
    _, err, el, rss = timed([ostid, "--db", db, "index", "-j", str(threads), "--preset", preset] + paths)
    m = re.search(r"; ([\d.]+) h of audio", err)
    hours = float(m.group(1)) if m else float("nan")
    size = int(subprocess.run(["du", "-sb", db], capture_output=True, text=True).stdout.split()[0])
    return hours, el, rss, size


def evaluate(ostid, decode_only, cache, preset, size, indexed, extra, clips, threads, max_chance=None):
    db = os.path.join(cache, f"db-{preset}-{size}")
    paths = indexed + ([extra] if size == "large" else [])
    hours, el, rss, nbytes = index_db(ostid, db, preset, threads, paths)
    r = {"preset": preset, "size": size, "indexed_tracks": len(indexed), "audio_hours": hours,
         "index_s": round(el, 2), "index_x_realtime": round(hours * 3600 / el, 1),
         "index_peak_rss_mb": round(rss, 1), "index_bytes": nbytes,
         "mb_per_audio_hour": round(nbytes / 1e6 / hours, 3)}
    if size == "base":
        _, err2, el2, _ = timed([ostid, "--db", db, "index", "-j", str(threads)] + indexed)
        reindexed = re.search(r"indexed (\d+), unchanged (\d+)", err2)
        out, _, _, _ = timed([decode_only, str(threads)] + indexed)
        dm = re.search(r"decode only: .* = (\d+)x real time", out)
        decode_x = float(dm.group(1)) if dm else float("nan")
        r.update(decode_only_x_realtime=decode_x,
                 index_vs_decode_pct=round(100 * r["index_x_realtime"] / decode_x, 1) if decode_x == decode_x else None,
                 reindex_s=round(el2, 3), reindex_decoded=int(reindexed.group(1)) if reindexed else None)

    listfile = os.path.join(cache, f"clips-{size}.txt")
    with open(listfile, "w") as f:
        f.write("\n".join(c["query"] for c in clips) + "\n")
    loose = ["--max-chance", max_chance] if max_chance else []
    out, _, match_el, match_rss = timed([ostid, "--db", db, "-q", "match", "--json", "-j", str(threads),
                                         "--from-file", listfile] + loose)
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == len(clips), (len(lines), len(clips))
    # Every answer, for choosing rules on the tuning half (benches/tune.py).
    with open(os.path.join(cache, f"answers-{preset}-{size}.jsonl"), "w") as f:
        for c, a in zip(clips, lines):
            f.write(json.dumps({"clip": c, "answer": a}) + "\n")
    r.update(max_chance=max_chance, match_clips=len(clips), match_total_s=round(match_el, 1), match_peak_rss_mb=round(match_rss, 1))
    r["halves"] = {h: score([(c, a) for c, a in zip(clips, lines) if c["half"] == h])
                   for h in sorted({c["half"] for c in clips})}
    return r


def score(pairs):
    cells, fp, bands, lat = {}, {}, {}, {}
    for c, a in pairs:
        m = a.get("match")
        key = f"{c['kind']}|{c['length']}"
        if c["length"] == 10 and "match_ms" in a:
            lat.setdefault("unknown" if c["group"] == "unknown" else c["kind"], []).append(a["match_ms"])
        if c["group"] == "unknown":
            h = fp.setdefault(key, [0, 0])
            h[1] += 1
            if m:
                h[0] += 1
                bands.setdefault(band(m["confidence"]), [0, 0])[1] += 1
            continue
        cell = cells.setdefault(key, {"n": 0, "piece": 0, "exact": 0, "offset": 0})
        cell["n"] += 1
        if not m:
            continue
        right = piece_of(m["path"]) == piece_of(c["path"])
        exact = os.path.realpath(m["path"]) == os.path.realpath(c["path"])
        cell["piece"] += right
        cell["exact"] += exact
        offs = [m["offset_s"]] + m.get("offsets_s", [])
        cell["offset"] += exact and any(abs(o - c["offset_s"]) <= 0.1 for o in offs)
        b = bands.setdefault(band(m["confidence"]), [0, 0])
        b[0] += right
        b[1] += 1
    named = sum(v[0] for v in fp.values())
    total = sum(v[1] for v in fp.values())
    return {
        "cells": cells,
        "false_positives": {"named": named, "clips": total, "pct": round(pct(named, total), 3),
                            "upper95_pct": round(wilson_upper(named, total), 3), "by_cell": fp},
        "confidence_bands": bands,
        "match_ms_10s_median": {k: round(statistics.median(v), 1) for k, v in lat.items()},
        "match_ms_10s_p95": {k: round(sorted(v)[int(0.95 * (len(v) - 1))], 1) for k, v in lat.items()},
    }


BANDS = ["0.99-1", "0.9-0.99", "0.7-0.9", "0.5-0.7", "<0.5"]


def band(c):
    """Confidence bands, each closed below: a calibrated confidence c means
    answers in a band are right about as often as its values say."""
    for lo, name in ((0.99, "0.99-1"), (0.9, "0.9-0.99"), (0.7, "0.7-0.9"), (0.5, "0.5-0.7")):
        if c >= lo:
            return name
    return "<0.5"


def report(r):
    print(f"\n## ostid evaluation, preset `{r['preset']}`, library `{r['size']}` ({r['mode']}, {r['date']}, commit {r['commit']})\n")
    print(f"{r['indexed_tracks']} tracks indexed ({r['audio_hours']:.2f} h), {r['held_out_tracks']} held out; "
          f"unknown tracks per half {r['unknown_tracks']} from {r['unknown_works']} works.\n")
    for half, s in r["halves"].items():
        print(f"### {half} half\n")
        if s["cells"]:
            print("Top-1 right piece (%), exact recording / offset within 0.1 s (%):\n")
            print("| damage | n | 3 s | 5 s | 10 s |\n|---|---|---|---|---|")
            kinds = sorted({k.split("|")[0] for k in s["cells"]}, key=DEGRADATIONS.index)
            for kind in kinds:
                cs = [s["cells"].get(f"{kind}|{L}") for L in LENGTHS]
                row = [f"{pct(c['piece'], c['n']):.0f} ({pct(c['exact'], c['n']):.0f} / {pct(c['offset'], c['n']):.0f})" if c else "-" for c in cs]
                print(f"| {kind} | {cs[0]['n'] if cs[0] else 0} | " + " | ".join(row) + " |")
        fp = s["false_positives"]
        print(f"\nFalse positives: {fp['named']} of {fp['clips']} unknown clips named "
              f"({fp['pct']:.2f} %, 95 % upper bound {fp['upper95_pct']:.2f} %).\n")
        print("| damage | 3 s | 5 s | 10 s |\n|---|---|---|---|")
        for kind in UNKNOWN_KINDS:
            cs = [fp["by_cell"].get(f"{kind}|{L}", [0, 0]) for L in LENGTHS]
            print(f"| {kind} | " + " | ".join(f"{a}/{b}" for a, b in cs) + " |")
        print("\nConfidence reliability (named clips, known and unknown):\n")
        print("| confidence | named | right % |\n|---|---|---|")
        for b in BANDS:
            if b in s["confidence_bands"]:
                ok, n = s["confidence_bands"][b]
                print(f"| {b} | {n} | {pct(ok, n):.1f} |")
        print("\nmatch_ms of 10 s clips, median (p95): " + ", ".join(
            f"{k} {v} ({s['match_ms_10s_p95'][k]})" for k, v in s["match_ms_10s_median"].items()) + "\n")
    print("| metric | value |\n|---|---|")
    if "decode_only_x_realtime" in r:
        print(f"| index throughput | {r['index_x_realtime']:.0f}x real time ({r['index_vs_decode_pct']} % of decode-only {r['decode_only_x_realtime']:.0f}x) |")
        print(f"| re-index unchanged | {r['reindex_s']:.2f} s, {r['reindex_decoded']} files decoded |")
    else:
        print(f"| index throughput | {r['index_x_realtime']:.0f}x real time |")
    print(f"| index size | {r['index_bytes']/1e6:.2f} MB = {r['mb_per_audio_hour']:.2f} MB per audio hour |")
    print(f"| index peak RSS | {r['index_peak_rss_mb']:.0f} MB |")
    print(f"| match, {r['match_clips']} clips in one process | {r['match_total_s']} s, peak RSS {r['match_peak_rss_mb']:.0f} MB |")


if __name__ == "__main__":
    main()
