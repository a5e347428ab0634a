"""Evaluation corpus: music of four Debian packages, one work per package,
laid out as Work/Title.ext under CACHE/library (never committed).

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


def build(cache):
    lib = os.path.join(cache, "library")
    if os.path.isdir(lib) and os.listdir(lib):
        return lib
    debs = os.path.join(cache, "debs")
    os.makedirs(debs, exist_ok=True)
    missing = [p for p in PACKAGES if not glob.glob(os.path.join(debs, p + "_*.deb"))]
    if missing:
        if subprocess.run(["apt-get", "download"] + missing, cwd=debs).returncode != 0:
            # A fresh machine has no package lists yet.
            subprocess.run(["apt-get", "update", "-qq"], check=True)
            subprocess.run(["apt-get", "download"] + missing, cwd=debs, check=True)
    tmp = lib + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    for pkg, (work, pattern) in PACKAGES.items():
        deb = glob.glob(os.path.join(debs, pkg + "_*.deb"))[0]
        x = os.path.join(cache, "x", pkg)
        if not os.path.isdir(x):
            os.makedirs(x, exist_ok=True)
            subprocess.run(["dpkg", "-x", deb, x], check=True)
        os.makedirs(os.path.join(tmp, work), exist_ok=True)
        for src in sorted(glob.glob(os.path.join(x, pattern), recursive=True)):
            stem, ext = os.path.splitext(os.path.basename(src))
            if ext.lower() not in AUDIO_EXT or os.path.islink(src):
                continue
            dst = os.path.join(tmp, work, stem + ext)
            if os.path.exists(dst):  # same title in two albums of one package
                dst = os.path.join(tmp, work, stem + "_" + os.path.basename(os.path.dirname(src)) + ext)
            shutil.copyfile(src, dst)
    os.rename(tmp, lib)
    return lib


if __name__ == "__main__":
    print(build(sys.argv[1] if len(sys.argv) > 1 else "cache"))
