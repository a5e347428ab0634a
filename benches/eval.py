#!/usr/bin/env python3
"""ostid evaluation on real soundtracks: accuracy under damage, false
positives, speed, index size and memory, against the gates in DEVELOPERS.md.

    python3 benches/eval.py            # full: 100 clips per cell, 324 held-out
    python3 benches/eval.py --quick    # 30 per cell, 108 held-out (a few minutes)

Rebuilds corpus, clips and table from scratch on a fresh machine (installs
ffmpeg, sox, espeak-ng and numpy if missing); a second run reuses the cache
(default ./cache, never committed). Writes a Markdown report to stdout and
JSON to CACHE/results-<preset>.json.
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
    """Versions of one piece share a key: track3 / track3_enhanced, menu / menu_enhanced."""
    stem = os.path.splitext(os.path.basename(path))[0].lower()
    stem = re.sub(r"_(enhanced|[a-z]+_soundtrack)$", "", stem)
    key = os.path.basename(os.path.dirname(path)) + "/" + stem
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


def build_queries(cache, indexed, held, per_cell, held_per_cell, seed, degradations):
    """Clips per damage kind, each kind seeded on its own and cached in its
    own manifest: adding a kind leaves the others' clips as they were."""
    import numpy as np
    qdir = os.path.join(cache, f"queries-{seed}-{per_cell}-{held_per_cell}")
    os.makedirs(qdir, exist_ok=True)
    speech = None
    pcm = {}
    clips = []

    for kind in degradations:
        manifest = os.path.join(qdir, f"manifest-{kind}.json")
        if os.path.exists(manifest):
            with open(manifest) as f:
                clips += json.load(f)
            continue
        if speech is None:
            speech = speech_track(cache)
        tag = int(hashlib.sha256(f"{seed}-{kind}".encode()).hexdigest()[:8], 16)
        rng = random.Random(tag)
        nprng = np.random.default_rng(tag)

        def pick(pool, length):
            for _ in range(50):
                path = rng.choice(pool)
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
            for group, pool, n in (("known", indexed, per_cell), ("held", held, held_per_cell)):
                for i in range(n):
                    path, start, seg = pick(pool, length)
                    base = os.path.join(qdir, f"{group}_{kind}_{length}s_{i:03d}")
                    q = make_clip(cache, kind, seg, base, rng, nprng, speech)
                    kclips.append({"query": q, "group": group, "kind": kind, "length": length,
                                   "path": path, "piece": piece_of(path), "offset_s": round(start, 3)})
        with open(manifest + ".tmp", "w") as f:
            json.dump(kclips, f)
        os.replace(manifest + ".tmp", manifest)
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="30 clips per cell (under ~3 minutes warm)")
    ap.add_argument("--cache", default=os.path.join(ROOT, "cache"))
    ap.add_argument("--preset", action="append", help="fingerprint preset(s) to compare (default: default)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    cache = os.path.abspath(args.cache)
    os.makedirs(cache, exist_ok=True)
    ensure_tools()
    per_cell = 30 if args.quick else 100
    held_per_cell = 4 if args.quick else 12

    lib = corpus.build(cache)
    files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(lib) for f in fs)
    indexed, held = split(files)
    run(["cargo", "build", "--release", "-q", "--bin", "ostid", "--example", "decode_only"], cwd=ROOT)
    ostid = os.path.join(ROOT, "target", "release", "ostid")
    decode_only = os.path.join(ROOT, "target", "release", "examples", "decode_only")
    clips = build_queries(cache, indexed, held, per_cell, held_per_cell, args.seed, DEGRADATIONS)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    results = {}
    for preset in args.preset or ["default"]:
        results[preset] = evaluate(ostid, decode_only, cache, preset, indexed, held, clips, args.threads)
        results[preset]["commit"] = commit
        results[preset]["date"] = time.strftime("%Y-%m-%d")
        results[preset]["mode"] = "quick" if args.quick else "full"
        with open(os.path.join(cache, f"results-{preset}.json"), "w") as f:
            json.dump(results[preset], f, indent=1)
        report(preset, results[preset])


def evaluate(ostid, decode_only, cache, preset, indexed, held, clips, threads):
    db = os.path.join(cache, f"db-{preset}")
    shutil.rmtree(db, ignore_errors=True)
    _, err, el, rss = timed([ostid, "--db", db, "index", "-j", str(threads), "--preset", preset] + indexed)
    m = re.search(r"; ([\d.]+) h of audio", err)
    hours = float(m.group(1)) if m else float("nan")
    size = int(subprocess.run(["du", "-sb", db], capture_output=True, text=True).stdout.split()[0])
    _, err2, el2, _ = timed([ostid, "--db", db, "index", "-j", str(threads)] + indexed)
    reindexed = re.search(r"indexed (\d+), unchanged (\d+)", err2)
    out, _, _, _ = timed([decode_only, str(threads)] + indexed)
    dm = re.search(r"decode only: .* = (\d+)x real time", out)
    decode_x = float(dm.group(1)) if dm else float("nan")

    listfile = os.path.join(cache, "clips.txt")
    with open(listfile, "w") as f:
        f.write("\n".join(c["query"] for c in clips) + "\n")
    out, _, match_el, match_rss = timed([ostid, "--db", db, "-q", "match", "--json", "-j", str(threads),
                                         "--from-file", listfile])
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == len(clips), (len(lines), len(clips))
    cells, held_named, bands, lat, lat_by_kind = {}, {}, {}, [], {}
    for c, r in zip(clips, lines):
        m = r.get("match")
        key = (c["kind"], c["length"])
        if c["group"] == "held":
            if c["length"] == 10 and "match_ms" in r:
                lat_by_kind.setdefault("held-out", []).append(r["match_ms"])
            h = held_named.setdefault(key, [0, 0])
            h[1] += 1
            if m:
                h[0] += 1
                b = band(m["confidence"])
                bands.setdefault(b, [0, 0])[1] += 1
            continue
        cell = cells.setdefault(key, {"n": 0, "piece": 0, "exact": 0, "offset": 0})
        cell["n"] += 1
        if c["kind"] == "clean" and c["length"] == 10 and "match_ms" in r:
            lat.append(r["match_ms"])
        if c["length"] == 10 and "match_ms" in r:
            lat_by_kind.setdefault(c["kind"], []).append(r["match_ms"])
        if not m:
            continue
        right = corpus_piece(m["path"]) == piece_of(c["path"])
        exact = os.path.realpath(m["path"]) == os.path.realpath(c["path"])
        cell["piece"] += right
        cell["exact"] += exact
        offs = [m["offset_s"]] + m.get("offsets_s", [])
        cell["offset"] += exact and any(abs(o - c["offset_s"]) <= 0.1 for o in offs)
        b = band(m["confidence"])
        bands.setdefault(b, [0, 0])
        bands[b][0] += right
        bands[b][1] += 1
    held_total = sum(v[1] for v in held_named.values())
    held_fp = sum(v[0] for v in held_named.values())
    lat.sort()
    return {
        "preset": preset,
        "indexed_tracks": len(indexed), "held_out_tracks": len(held),
        "audio_hours": hours, "index_s": round(el, 2), "index_x_realtime": round(hours * 3600 / el, 1),
        "decode_only_x_realtime": decode_x,
        "index_vs_decode_pct": round(100 * hours * 3600 / el / decode_x, 1) if decode_x == decode_x else None,
        "index_peak_rss_mb": round(rss, 1), "index_bytes": size,
        "mb_per_audio_hour": round(size / 1e6 / hours, 3),
        "reindex_s": round(el2, 3), "reindex_decoded": int(reindexed.group(1)) if reindexed else None,
        "match_clips": len(clips), "match_total_s": round(match_el, 1), "match_peak_rss_mb": round(match_rss, 1),
        "latency_ms_10s_clean": {"median": statistics.median(lat) if lat else None,
                                 "p95": lat[int(0.95 * (len(lat) - 1))] if lat else None},
        "latency_ms_10s_median_by_kind": {k: round(statistics.median(v), 1) for k, v in lat_by_kind.items()},
        "cells": {f"{k[0]}|{k[1]}": v for k, v in cells.items()},
        "false_positives": {"named": held_fp, "clips": held_total, "pct": round(pct(held_fp, held_total), 2),
                            "by_cell": {f"{k[0]}|{k[1]}": v for k, v in held_named.items()}},
        "confidence_bands": bands,
    }


def corpus_piece(path):
    return piece_of(path)


def band(c):
    for lo in (0.99, 0.9, 0.7, 0.5):
        if c >= lo:
            return f">={lo}"
    return "<0.5"


def report(preset, r):
    print(f"\n## ostid evaluation, preset `{preset}` ({r['mode']}, {r['date']}, commit {r['commit']})\n")
    print(f"{r['indexed_tracks']} tracks indexed ({r['audio_hours']:.2f} h), {r['held_out_tracks']} held out.\n")
    print("Top-1 right piece (%):\n")
    print("| damage | 3 s | 5 s | 10 s |\n|---|---|---|---|")
    kinds = sorted({k.split("|")[0] for k in r["cells"]}, key=DEGRADATIONS.index)
    for kind in kinds:
        row = [f"{pct(r['cells'][f'{kind}|{L}']['piece'], r['cells'][f'{kind}|{L}']['n']):.1f}" for L in LENGTHS]
        print(f"| {kind} | " + " | ".join(row) + " |")
    print("\nExact recording / offset within 0.1 s (%):\n")
    print("| damage | 3 s | 5 s | 10 s |\n|---|---|---|---|")
    for kind in kinds:
        cells = [r["cells"][f"{kind}|{L}"] for L in LENGTHS]
        print(f"| {kind} | " + " | ".join(f"{pct(c['exact'], c['n']):.0f} / {pct(c['offset'], c['n']):.0f}" for c in cells) + " |")
    fp = r["false_positives"]
    print(f"\nFalse positives: {fp['named']} of {fp['clips']} held-out clips named ({fp['pct']:.2f} %).\n")
    print("Confidence reliability (named clips, known and held-out):\n")
    print("| confidence | named | precision % |\n|---|---|---|")
    for b in (">=0.99", ">=0.9", ">=0.7", ">=0.5", "<0.5"):
        if b in r["confidence_bands"]:
            ok, n = r["confidence_bands"][b]
            print(f"| {b} | {n} | {pct(ok, n):.1f} |")
    lat = r["latency_ms_10s_clean"]
    print(f"\n| metric | value |\n|---|---|")
    print(f"| index throughput | {r['index_x_realtime']:.0f}x real time ({r['index_vs_decode_pct']} % of decode-only {r['decode_only_x_realtime']:.0f}x) |")
    print(f"| index size | {r['index_bytes']/1e6:.2f} MB = {r['mb_per_audio_hour']:.2f} MB per audio hour |")
    print(f"| index peak RSS | {r['index_peak_rss_mb']:.0f} MB |")
    print(f"| re-index unchanged | {r['reindex_s']:.2f} s, {r['reindex_decoded']} files decoded |")
    print(f"| match latency, 10 s clip after decoding | median {lat['median']} ms, p95 {lat['p95']} ms |")
    by_kind = r.get("latency_ms_10s_median_by_kind", {})
    if by_kind:
        print("| median match_ms by kind, 10 s | " + ", ".join(f"{k} {v}" for k, v in by_kind.items()) + " |")
    print(f"| match, {r['match_clips']} clips in one process | {r['match_total_s']} s, peak RSS {r['match_peak_rss_mb']:.0f} MB |")


if __name__ == "__main__":
    main()
