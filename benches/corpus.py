"""Evaluation corpus, from Debian packages' game music (never committed):

- CACHE/library: the evaluation library, four works (Work/Title.ext); most
  of it is indexed, some pieces are held out.
- CACHE/unknown: fourteen more works the evaluation never indexes: the
  source of the false-positive clips.
- CACHE/extra: copies of the indexed part changed in speed by 12 % or more
  (beyond the warp search), indexed only for the larger library size.

Used by benches/eval.py; run on its own to just fetch and lay out.
"""
import os, shutil, subprocess, sys, glob

PACKAGES = {
    # package: (work name, glob of music files inside the package)
    "warzone2100-music": ("Warzone 2100", "usr/share/games/warzone2100/music/**/*.opus"),
    "drascula-music": ("Drascula", "usr/share/scummvm/drascula/audio/*.ogg"),
    "asc-music": ("Advanced Strategic Command", "usr/share/games/asc/music/*"),
    "colobot-common-sounds": ("Colobot", "usr/share/games/colobot/music/*.ogg"),
}
AUDIO_EXT = {".ogg", ".opus", ".mp3", ".flac", ".wav"}

# Works never indexed: package -> (work, glob). Files under MIN_UNKNOWN_BYTES
# are sound effects and jingles, not pieces.
UNKNOWN = {
    "extremetuxracer-data": ("Extreme Tux Racer", "usr/share/games/etr/music/*.ogg"),
    "frozen-bubble-data": ("Frozen Bubble", "usr/share/games/frozen-bubble/snd/*.ogg"),
    "openclonk-data": ("OpenClonk", "usr/share/games/openclonk/Music.ocg/*.ogg"),
    "supertux-data": ("SuperTux", "usr/share/games/supertux2/music/**/*.ogg"),
    "warmux-data": ("Warmux", "usr/share/games/warmux/music/**/*.ogg"),
    "widelands-data": ("Widelands", "usr/share/games/widelands/data/music/*.ogg"),
    "xmoto-data": ("X-Moto", "usr/share/games/xmoto/Textures/Musics/*.ogg"),
    "wesnoth-1.16-music": ("Battle for Wesnoth", "usr/share/games/wesnoth/1.16/data/core/music/*.ogg"),
    "hyperrogue-music": ("HyperRogue", "usr/share/hyperrogue/music/*.ogg"),
    "planetblupi-music-ogg": ("Planet Blupi", "usr/share/planetblupi/music/*.ogg"),
    "singularity-music": ("Endgame: Singularity", "usr/share/games/singularity/music/*.ogg"),
    "pushover-data": ("Pushover", "usr/share/pushover/themes/*.ogg"),
    "freedroidrpg-data": ("FreedroidRPG", "usr/share/freedroidrpg/data/sound/music/*.ogg"),
    "hedgewars-data": ("Hedgewars", "usr/share/games/hedgewars/Data/Music/*.ogg"),
}
MIN_UNKNOWN_BYTES = 300_000

# Speed factors of the extra library's copies: all at least 12 % away from 1
# (the warp search covers +-8 %), ~35 h in all for the ~5.7 h indexed.
EXTRA_SPEEDS = [0.75, 0.80, 0.88, 1.12, 1.20, 1.28]


def decodes(path):
    """Whether ffmpeg reads the file's headers and first seconds."""
    return subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-t", "2", "-f", "null", "-"],
                          capture_output=True).returncode == 0


def build(cache):
    return lay_out(cache, "library", PACKAGES, 0)


def build_unknown(cache):
    return lay_out(cache, "unknown", UNKNOWN, MIN_UNKNOWN_BYTES)


def lay_out(cache, name, packages, min_bytes):
    lib = os.path.join(cache, name)
    if os.path.isdir(lib) and os.listdir(lib):
        return lib
    debs = os.path.join(cache, "debs")
    os.makedirs(debs, exist_ok=True)
    missing = [p for p in packages if not glob.glob(os.path.join(debs, p + "_*.deb"))]
    if missing:
        if subprocess.run(["apt-get", "download"] + missing, cwd=debs).returncode != 0:
            # A fresh machine has no package lists yet.
            subprocess.run(["apt-get", "update", "-qq"], check=True)
            subprocess.run(["apt-get", "download"] + missing, cwd=debs, check=True)
    tmp = lib + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    for pkg, (work, pattern) in packages.items():
        deb = glob.glob(os.path.join(debs, pkg + "_*.deb"))[0]
        x = os.path.join(cache, "x", pkg)
        if not os.path.isdir(x):
            os.makedirs(x, exist_ok=True)
            subprocess.run(["dpkg", "-x", deb, x], check=True)
        os.makedirs(os.path.join(tmp, work), exist_ok=True)
        for src in sorted(glob.glob(os.path.join(x, pattern), recursive=True)):
            stem, ext = os.path.splitext(os.path.basename(src))
            if ext.lower() not in AUDIO_EXT or os.path.islink(src) or os.path.getsize(src) < min_bytes:
                continue
            if min_bytes and not decodes(src):
                print(f"corpus: {src}: does not decode, left out", file=sys.stderr)
                continue
            dst = os.path.join(tmp, work, stem + ext)
            if os.path.exists(dst):  # same title in two albums of one package
                dst = os.path.join(tmp, work, stem + "_" + os.path.basename(os.path.dirname(src)) + ext)
            shutil.copyfile(src, dst)
    os.rename(tmp, lib)
    return lib


def build_extra(cache, indexed, threads=2):
    """Copies of `indexed` at each of EXTRA_SPEEDS (ffmpeg asetrate: tempo
    and pitch together, as a PAL transfer), 8 kHz mono FLAC (what ostid
    analyses anyway; small and quick to decode)."""
    from concurrent.futures import ThreadPoolExecutor
    out = os.path.join(cache, "extra")
    done = os.path.join(out, ".done")
    if os.path.exists(done):
        return out
    jobs = []
    for speed in EXTRA_SPEEDS:
        for src in indexed:
            work = os.path.basename(os.path.dirname(src))
            # The extension stays in the name: one piece may come in two formats.
            dst = os.path.join(out, f"{work} x{speed:.2f}", os.path.basename(src) + ".flac")
            if not os.path.exists(dst):
                jobs.append((src, dst, speed))

    def one(job):
        src, dst, speed = job
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", src, "-af",
                        f"aresample=44100,asetrate={44100 * speed:.0f},aresample=8000",
                        "-ac", "1", "-c:a", "flac", "-metadata", f"album={os.path.basename(os.path.dirname(dst))}",
                        dst + ".tmp.flac"], check=True)
        os.rename(dst + ".tmp.flac", dst)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, jobs))
    open(done, "w").close()
    return out


if __name__ == "__main__":
    cache = sys.argv[1] if len(sys.argv) > 1 else "cache"
    print(build(cache))
    print(build_unknown(cache))
