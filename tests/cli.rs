//! CLI integration tests: the real binary on the committed fixtures, each test
//! with its own index in a temporary directory.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use ostid::output::MatchLine;
use predicates::prelude::*;
use tempfile::TempDir;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn ostid(db: &Path) -> Command {
    let mut c = Command::cargo_bin("ostid").expect("binary built");
    c.arg("--db").arg(db).env_remove("OSTID_DB");
    c
}

/// The binary as a plain process (to signal, kill or cut its pipes).
fn ostid_process(db: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("ostid"));
    c.arg("--db").arg(db).env_remove("OSTID_DB");
    c
}

fn indexed() -> (TempDir, PathBuf) {
    let tmp = TempDir::new().expect("tempdir");
    let db = tmp.path().join("index");
    ostid(&db)
        .args(["index", "-j", "2"])
        .arg(fixtures().join("library"))
        .assert()
        .code(0)
        .stdout("")
        .stderr(predicate::str::contains(
            "indexed 7, unchanged 0, damaged 0, failed 0",
        ));
    (tmp, db)
}

/// `ostid match` on one fixture clip.
fn match_one(db: &Path, clip: &str) -> assert_cmd::assert::Assert {
    ostid(db)
        .arg("match")
        .arg(fixtures().join("queries").join(clip))
        .assert()
}

/// Query files with their truth: `Title@o1+o2_kind.ext`.
fn known_queries() -> Vec<(PathBuf, String, Vec<f64>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(fixtures().join("queries")).expect("queries") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some((title, rest)) = name.split_once('@') else {
            continue;
        };
        let offsets = rest.split('_').next().unwrap();
        let offsets = offsets
            .split('+')
            .map(|o| o.parse().expect("offset in name"))
            .collect();
        out.push((path, title.to_string(), offsets));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 6, "fixture queries missing");
    out
}

/// An index of `lib` at `db` built with `params` (written beside it).
fn indexed_with(params: &ostid::params::Params, lib: &Path, db: &Path) {
    let file = db.with_extension("params.json");
    std::fs::write(&file, serde_json::to_string(params).expect("json")).expect("write");
    ostid(db)
        .args(["index", "--params"])
        .arg(&file)
        .arg(lib)
        .assert()
        .code(0);
}

fn json_lines(out: &Output) -> Vec<MatchLine> {
    String::from_utf8(out.stdout.clone())
        .expect("utf8")
        .lines()
        .map(|l| {
            serde_json::from_str::<MatchLine>(l)
                .unwrap_or_else(|e| panic!("bad JSON line {l}: {e}"))
        })
        .collect()
}

#[test]
fn every_fixture_clip_is_named_with_its_offset() {
    let (_tmp, db) = indexed();
    let queries = known_queries();
    let out = ostid(&db)
        .args(["match", "--json"])
        .args(queries.iter().map(|q| &q.0))
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines.len(), queries.len());
    for ((path, title, offsets), line) in queries.iter().zip(&lines) {
        assert_eq!(
            line.query,
            path.to_string_lossy(),
            "query echoed as given, in order"
        );
        let m = line
            .best
            .as_ref()
            .unwrap_or_else(|| panic!("{title}: no match"));
        assert_eq!(&m.title, title, "{}", path.display());
        for want in offsets {
            let found = std::iter::once(m.offset_s)
                .chain(m.offsets_s.iter().copied())
                .any(|o| (o - want).abs() <= 0.1);
            assert!(
                found,
                "{title}: offset {want} not in {} / {:?}",
                m.offset_s, m.offsets_s
            );
        }
        assert!((0.5..=1.0).contains(&m.confidence));
        assert!(line.decode_ms.is_some() && line.match_ms.is_some() && line.alternatives.is_some());
        // Changes of speed, tempo or pitch are named in the file: found and reported.
        let name = path.file_name().unwrap().to_string_lossy();
        let kind = name.rsplit_once('_').unwrap().1.rsplit_once('.').unwrap().0;
        let (speed, tempo, pitch) = match kind.split_once(['-', '+']) {
            Some(("speed", f)) => (f.parse().unwrap(), 1.0, 0.0),
            Some(("tempo", f)) => (1.0, f.parse().unwrap(), 0.0),
            Some(("pitch", _)) => (1.0, 1.0, 1.0),
            _ => (1.0, 1.0, 0.0),
        };
        let close = |got: f64, want: f64, tol: f64| (got - want).abs() <= tol;
        assert!(
            close(m.speed, speed, 0.005)
                && close(m.tempo, tempo, 0.015)
                && close(m.pitch_semitones, pitch, 0.1),
            "{name}: speed {} tempo {} pitch {} for {speed} {tempo} {pitch}",
            m.speed,
            m.tempo,
            m.pitch_semitones
        );
    }
    // The human line shows the change.
    let speed = queries
        .iter()
        .find(|q| q.0.to_string_lossy().contains("_speed-"))
        .expect("speed clip");
    ostid(&db)
        .arg("match")
        .arg(&speed.0)
        .assert()
        .code(0)
        .stdout(
            predicate::str::is_match(
                r"Storm Front — Skyward Saga, at 0:03\.0, speed 1\.04\d  \[score",
            )
            .unwrap(),
        );
    // A looping track lists every position.
    let looped = lines
        .iter()
        .find(|l| l.query.contains("_loop"))
        .expect("loop clip");
    assert!(looped.best.as_ref().unwrap().offsets_s.len() >= 3);
}

#[test]
fn metadata_comes_from_tags_then_folders() {
    let (_tmp, db) = indexed();
    let q = fixtures().join("queries");
    let out = ostid(&db)
        .args(["match", "--json"])
        .arg(q.join("Main Theme@4.000_clean.wav"))
        .arg(q.join("Prelude@5.017_between-hops.wav"))
        .arg(q.join("Night Market@3.500_mp3-64k.mp3"))
        .output()
        .expect("run");
    let lines = json_lines(&out);
    let tagged = lines[0].best.as_ref().unwrap();
    assert_eq!(
        (tagged.title.as_str(), tagged.work.as_str()),
        ("Main Theme", "Skyward Saga")
    );
    assert_eq!(tagged.composer.as_deref(), Some("Ada Composer"));
    assert!(tagged.path.ends_with("sky1.flac"));
    // Disc folder skipped, track-number prefix stripped.
    let disc = lines[1].best.as_ref().unwrap();
    assert_eq!(
        (disc.title.as_str(), disc.work.as_str()),
        ("Prelude", "Hollow Crown")
    );
    let folder = lines[2].best.as_ref().unwrap();
    assert_eq!(
        (folder.title.as_str(), folder.work.as_str()),
        ("Night Market", "Ember Road")
    );
}

#[test]
fn unknown_clip_is_no_match_with_exit_1() {
    let (_tmp, db) = indexed();
    let clip = fixtures().join("queries/unknown_same-instruments.wav");
    let out = ostid(&db)
        .args(["match", "--json"])
        .arg(&clip)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].best.is_none(),
        "unknown clip named: {:?}",
        lines[0].best
    );
    assert!(lines[0].error.is_none());
    ostid(&db)
        .arg("match")
        .arg(&clip)
        .assert()
        .code(1)
        .stdout("no match\n");
}

#[test]
fn human_output_names_title_work_and_position() {
    let (_tmp, db) = indexed();
    match_one(&db, "Main Theme@4.000_clean.wav")
        .code(0)
        .stdout(predicate::str::starts_with(
            "Main Theme — Skyward Saga, at 0:04.0",
        ));
}

#[test]
fn damaged_and_non_audio_files_are_reported_and_the_rest_indexed() {
    let tmp = TempDir::new().unwrap();
    let db = tmp.path().join("index");
    let out = ostid(&db)
        .arg("index")
        .arg(fixtures().join("library"))
        .arg(fixtures().join("damaged"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not-audio.mp3") && err.contains("not a recognised audio file"),
        "{err}"
    );
    assert!(err.contains("empty.ogg"), "{err}");
    assert!(err.contains("truncated.flac: truncated at 0:0"), "{err}");
    assert!(
        err.contains("indexed 7, unchanged 0, damaged 1, failed 2"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    // The good files answer as usual.
    match_one(&db, "Coda@2.500_clean.wav")
        .code(0)
        .stdout(predicate::str::contains("Coda — Hollow Crown"));
}

#[test]
fn reindexing_an_unchanged_library_decodes_nothing() {
    let (_tmp, db) = indexed();
    ostid(&db)
        .arg("index")
        .arg(fixtures().join("library"))
        .assert()
        .code(0)
        .stderr(predicate::str::contains(
            "indexed 0, unchanged 7, damaged 0, failed 0",
        ));
}

#[test]
fn a_changed_file_replaces_its_postings() {
    let tmp = TempDir::new().unwrap();
    let lib = tmp.path().join("lib");
    std::fs::create_dir_all(lib.join("Work")).unwrap();
    let a = fixtures().join("library/Hollow Crown/Disc 2/01 - Coda.flac");
    let b = fixtures().join("library/Skyward Saga/sky1.flac");
    let slot = lib.join("Work/01 - Piece.flac");
    std::fs::copy(&a, &slot).unwrap();
    let db = tmp.path().join("index");
    ostid(&db).arg("index").arg(&lib).assert().code(0);
    // Same path, new content (and a new size): re-fingerprinted.
    std::fs::copy(&b, &slot).unwrap();
    ostid(&db)
        .arg("index")
        .arg(&lib)
        .assert()
        .code(0)
        .stderr(predicate::str::contains("indexed 1, unchanged 0"));
    match_one(&db, "Coda@2.500_clean.wav").code(1);
    match_one(&db, "Main Theme@4.000_clean.wav")
        .code(0)
        .stdout(predicate::str::contains("Main Theme"));
}

#[test]
fn stdin_wav_with_unknown_sizes_is_read_to_the_end() {
    let (_tmp, db) = indexed();
    let mut wav = std::fs::read(fixtures().join("queries/Main Theme@4.000_clean.wav")).unwrap();
    // What `ffmpeg -f wav -` writes to a pipe: RIFF and data sizes unknown.
    wav[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    let data = wav
        .windows(4)
        .position(|w| w == b"data")
        .expect("data chunk");
    wav[data + 4..data + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    let out = ostid(&db)
        .args(["match", "--json", "-"])
        .write_stdin(wav)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out);
    assert_eq!(lines[0].query, "-");
    let m = lines[0].best.as_ref().expect("match");
    assert_eq!(m.title, "Main Theme");
    assert!((m.offset_s - 4.0).abs() <= 0.1);
}

#[test]
fn clip_errors_are_reported_per_clip_with_exit_2() {
    let (tmp, db) = indexed();
    let missing = tmp.path().join("nope.wav");
    let good = fixtures().join("queries/Coda@2.500_clean.wav");
    let out = ostid(&db)
        .args(["match", "--json"])
        .arg(&missing)
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2);
    assert!(lines[0].best.is_none() && lines[0].error.as_deref().unwrap().contains("cannot read"));
    assert!(lines[0].alternatives.is_none());
    assert_eq!(lines[1].best.as_ref().unwrap().title, "Coda");
    // Human mode: results on stdout, the error on stderr.
    ostid(&db)
        .arg("match")
        .arg(&missing)
        .arg(&good)
        .assert()
        .code(2)
        .stdout(
            predicate::str::contains("Coda — Hollow Crown")
                .and(predicate::str::contains("nope").not()),
        )
        .stderr(predicate::str::contains("nope.wav: cannot read"));
}

#[test]
fn a_missing_index_is_an_error_and_is_not_created() {
    let tmp = TempDir::new().unwrap();
    let db = tmp.path().join("none");
    match_one(&db, "Coda@2.500_clean.wav").code(2).stderr(
        predicate::str::contains("no index at").and(predicate::str::contains("ostid index")),
    );
    assert!(!db.exists());
}

#[test]
fn a_different_preset_is_refused_with_the_fix() {
    let (_tmp, db) = indexed();
    ostid(&db)
        .args(["match", "--preset", "dense"])
        .arg(fixtures().join("queries/Coda@2.500_clean.wav"))
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("was built with preset")
                .and(predicate::str::contains("--rebuild")),
        );
    ostid(&db)
        .args(["index", "--preset", "dense"])
        .arg(fixtures().join("library"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("index --rebuild --preset dense"));
    ostid(&db)
        .args(["match", "--preset", "nonsense"])
        .arg(fixtures().join("queries/Coda@2.500_clean.wav"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown preset 'nonsense'"));
}

#[test]
fn rebuild_starts_over_with_the_new_preset() {
    let (_tmp, db) = indexed();
    ostid(&db)
        .args(["index", "--rebuild", "--preset", "dense"])
        .arg(fixtures().join("library"))
        .assert()
        .code(0)
        .stderr(predicate::str::contains("indexed 7, unchanged 0"));
    ostid(&db)
        .args(["match", "--preset", "dense"])
        .arg(fixtures().join("queries/Coda@2.500_clean.wav"))
        .assert()
        .code(0);
}

#[test]
fn a_second_process_is_refused_naming_the_holder() {
    let (_tmp, db) = indexed();
    let holder = ostid::store::Store::open(&db, ostid::store::Access::Read, None).expect("open");
    match_one(&db, "Coda@2.500_clean.wav").code(2).stderr(
        predicate::str::contains("is in use by pid")
            .and(predicate::str::contains(std::process::id().to_string())),
    );
    drop(holder);
}

#[test]
fn usage_errors_exit_2() {
    let tmp = TempDir::new().unwrap();
    ostid(tmp.path())
        .arg("match")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no clips given"));
    ostid(tmp.path()).arg("frobnicate").assert().code(2);
    ostid(tmp.path())
        .args(["match", "-", "-"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("only once"));
}

#[test]
fn clips_can_come_from_a_list_file() {
    let (tmp, db) = indexed();
    let list = tmp.path().join("list.txt");
    let q = fixtures().join("queries");
    std::fs::write(
        &list,
        format!(
            "{}\n{}\n",
            q.join("Coda@2.500_clean.wav").display(),
            q.join("unknown_same-instruments.wav").display()
        ),
    )
    .unwrap();
    let out = ostid(&db)
        .args(["-q", "match", "--json", "--from-file"])
        .arg(&list)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "one of two had no match");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2);
    assert!(lines[0].best.is_some() && lines[1].best.is_none());
    assert!(out.stderr.is_empty(), "--quiet");
}

#[test]
fn index_path_comes_from_the_environment() {
    let tmp = TempDir::new().unwrap();
    let db = tmp.path().join("envdb");
    Command::cargo_bin("ostid")
        .unwrap()
        .env("OSTID_DB", &db)
        .args(["index", "-q"])
        .arg(fixtures().join("library/Ember Road"))
        .assert()
        .code(0);
    assert!(db.join("sled").exists());
}

#[test]
fn stray_postings_files_from_a_crash_are_removed_by_the_next_writer() {
    let (_tmp, db) = indexed();
    let postings = db.join("postings");
    let live: Vec<_> = std::fs::read_dir(&postings)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(!live.is_empty());
    // What a kill between writing a segment and committing it leaves behind.
    std::fs::write(postings.join("seg-00000999.bin"), b"orphan").unwrap();
    std::fs::write(postings.join("seg-00001000.tmp"), b"half written").unwrap();
    // Readers leave them alone; the next writer removes them.
    match_one(&db, "Coda@2.500_clean.wav").code(0);
    assert!(postings.join("seg-00000999.bin").exists());
    ostid(&db)
        .arg("index")
        .arg(fixtures().join("library"))
        .assert()
        .code(0);
    assert!(!postings.join("seg-00000999.bin").exists());
    assert!(!postings.join("seg-00001000.tmp").exists());
    for p in &live {
        assert!(p.exists(), "live segment {} removed", p.display());
    }
    match_one(&db, "Coda@2.500_clean.wav").code(0);
}

#[test]
fn a_missing_postings_file_is_an_error_naming_the_fix() {
    let (_tmp, db) = indexed();
    for e in std::fs::read_dir(db.join("postings")).unwrap().flatten() {
        std::fs::remove_file(e.path()).unwrap();
    }
    match_one(&db, "Coda@2.500_clean.wav").code(2).stderr(
        predicate::str::contains("missing or damaged").and(predicate::str::contains("--rebuild")),
    );
}

#[test]
fn a_symlinked_file_or_folder_is_indexed_once() {
    let tmp = TempDir::new().unwrap();
    let lib = tmp.path().join("lib");
    std::fs::create_dir_all(lib.join("Work")).unwrap();
    std::fs::copy(
        fixtures().join("library/Hollow Crown/Disc 2/01 - Coda.flac"),
        lib.join("Work/01 - Coda.flac"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        lib.join("Work/01 - Coda.flac"),
        lib.join("Work/02 - Again.flac"),
    )
    .unwrap();
    std::os::unix::fs::symlink(lib.join("Work"), lib.join("Mirror")).unwrap();
    // A loop back to the top must not hang the walk either.
    std::os::unix::fs::symlink(&lib, lib.join("Work/loop")).unwrap();
    let db = tmp.path().join("index");
    ostid(&db)
        .arg("index")
        .arg(&lib)
        .arg(lib.join("Mirror"))
        .assert()
        .code(0)
        .stderr(predicate::str::contains(
            "indexed 1, unchanged 0, damaged 0, failed 0",
        ));
    let out = ostid(&db)
        .args(["match", "--json", "--top", "3"])
        .arg(fixtures().join("queries/Coda@2.500_clean.wav"))
        .output()
        .unwrap();
    let lines = json_lines(&out);
    assert_eq!(lines[0].best.as_ref().unwrap().title, "Coda");
}

#[test]
fn a_codec_symphonia_lacks_gets_the_ffmpeg_pipe() {
    let (_tmp, db) = indexed();
    let ac3 = fixtures().join("unsupported/ac3-in-matroska.mka");
    ostid(&db)
        .arg("match")
        .arg(&ac3)
        .assert()
        .code(2)
        .stdout("")
        .stderr(
            predicate::str::contains("ac3-in-matroska.mka: no audio track ostid can decode")
                .and(predicate::str::contains("AC-3"))
                .and(predicate::str::contains(
                    "ffmpeg -i FILE -f wav - | ostid match -",
                )),
        );
    // Indexing reports it and goes on.
    ostid(&db)
        .arg("index")
        .arg(fixtures().join("unsupported"))
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("convert it for the library")
                .and(predicate::str::contains("failed 1")),
        );
}

#[test]
fn an_empty_file_says_so() {
    let (_tmp, db) = indexed();
    ostid(&db)
        .arg("match")
        .arg(fixtures().join("damaged/empty.ogg"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "empty.ogg: not a recognised audio file (empty file, 0 bytes)",
        ));
    ostid(&db)
        .arg("match")
        .arg(fixtures().join("damaged/not-audio.mp3"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no audio format signature found"));
}

#[test]
fn a_closed_output_pipe_ends_quietly_with_0() {
    let (_tmp, db) = indexed();
    let clip = fixtures().join("queries/Coda@2.500_clean.wav");
    let mut cmd = ostid_process(&db);
    cmd.args(["match", "--json"]);
    // Enough output to overflow any buffer after the reader is gone.
    for _ in 0..300 {
        cmd.arg(&clip);
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// Send Ctrl-C (SIGINT) to a child process.
fn interrupt(child: &std::process::Child) {
    wait_for_sigint_handler(child);
    // SAFETY: plain kill(2) on a pid we own.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(rc, 0);
}

/// Wait until `child` catches SIGINT (its handler is installed), so that a
/// signal sent on a busy machine does not land before it and kill it
/// outright. Linux tells through `SigCgt` in /proc; elsewhere, a pause.
fn wait_for_sigint_handler(child: &std::process::Child) {
    let status = format!("/proc/{}/status", child.id());
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(20) {
        let Ok(text) = std::fs::read_to_string(&status) else {
            std::thread::sleep(std::time::Duration::from_millis(500));
            return;
        };
        let caught = text
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok());
        if caught.is_some_and(|mask| mask & (1 << (libc::SIGINT - 1)) != 0) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A mono 16-bit WAV of `seconds` of a chord that changes every 0.25 s.
fn write_long_wav(path: &Path, seconds: u32) {
    let rate = 8000u32;
    let samples: Vec<f32> = (0..rate * seconds)
        .map(|i| {
            let step = (i / (rate / 4)) as f32;
            let t = i as f32 / rate as f32;
            let f = 200.0 + (step * 37.0) % 1500.0;
            (2.0 * std::f32::consts::PI * f * t).sin() * 0.3
                + (2.0 * std::f32::consts::PI * 1.5 * f * t).sin() * 0.2
        })
        .collect();
    write_wav(path, &samples, rate);
}

#[test]
fn ctrl_c_during_index_keeps_what_is_done_and_exits_130() {
    let tmp = TempDir::new().unwrap();
    let db = tmp.path().join("index");
    let extra = tmp.path().join("long");
    std::fs::create_dir(&extra).unwrap();
    // Long enough to still be decoding when the signal lands (an idle
    // machine indexes this hour-long tone sequence at ~6,000x real time in a
    // debug build: one hour was done before 700 ms).
    write_long_wav(&extra.join("long.wav"), 7200);
    let child = ostid_process(&db)
        .args(["index", "-j", "1"])
        .arg(&extra)
        .arg(fixtures().join("library"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("stopped after"), "{err}");
    // The next run finishes the job; the interrupted file was not half-saved.
    ostid(&db)
        .args(["index", "-j", "2"])
        .arg(&extra)
        .arg(fixtures().join("library"))
        .assert()
        .code(0)
        .stderr(predicate::str::contains("indexed 8, unchanged 0"));
}

#[test]
fn ctrl_c_during_match_exits_130() {
    let (_tmp, db) = indexed();
    // Standard input that never ends: the match is waiting for audio.
    let mut child = ostid_process(&db)
        .args(["match", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Held open until the process has exited: `wait_with_output` would
    // close it first, and a loaded machine can then see the end of the
    // input (exit 2) before the signal.
    let stdin = child.stdin.take();
    std::thread::sleep(std::time::Duration::from_millis(500));
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn match_from_a_pipe_frees_the_index_and_still_names_the_track() {
    let (_tmp, db) = indexed();
    let clip = std::fs::read(fixtures().join("queries/Coda@2.500_clean.wav")).unwrap();
    let mut child = ostid_process(&db)
        .args(["match", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // While the pipe is silent the index is free: another process opens it
    // (once the match has taken the lock: the lock file names its holder).
    let mut stdin = child.stdin.take().unwrap();
    let started = std::time::Instant::now();
    let holder = format!("pid {} ", child.id());
    while !std::fs::read_to_string(db.join("lock")).is_ok_and(|l| l.starts_with(&holder)) {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the match never opened the index"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    loop {
        let stats = ostid(&db).arg("stats").output().unwrap();
        if stats.status.code() == Some(0) {
            break;
        }
        assert!(
            String::from_utf8_lossy(&stats.stderr).contains("is in use by pid"),
            "{}",
            String::from_utf8_lossy(&stats.stderr)
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the index was never released"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The names come from the records read when it was released.
    std::io::Write::write_all(&mut stdin, &clip).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Coda"));
}

/// A mono 16-bit WAV.
fn write_wav(path: &Path, samples: &[f32], rate: u32) {
    let n = samples.len() as u32;
    let mut wav = Vec::with_capacity(44 + 2 * samples.len());
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + 2 * n).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    for v in [1u16, 1] {
        wav.extend_from_slice(&v.to_le_bytes());
    }
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(2 * rate).to_le_bytes());
    for v in [2u16, 16] {
        wav.extend_from_slice(&v.to_le_bytes());
    }
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(2 * n).to_le_bytes());
    for &x in samples {
        wav.extend_from_slice(&((x.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
    }
    std::fs::write(path, wav).unwrap();
}

/// A file decoded to mono at 8 kHz.
fn pcm_8k(path: &Path) -> Vec<f32> {
    let mut out = Vec::new();
    ostid::decode::decode(
        &ostid::decode::Source::Path(path.to_path_buf()),
        8000,
        1.0,
        |c| {
            out.extend_from_slice(c);
            ostid::decode::Flow::Continue
        },
    )
    .unwrap();
    out
}

/// Speech-like sound: a gliding voice (harmonics of 110-220 Hz) through
/// formants that change every syllable, in bursts of 0.2-0.3 s.
fn synthetic_speech(seconds: f32) -> Vec<f32> {
    let rate = 8000.0;
    let n = (seconds * rate) as usize;
    let formants = [
        [700.0, 1200.0],
        [400.0, 2000.0],
        [300.0, 900.0],
        [550.0, 1700.0],
    ];
    (0..n)
        .map(|i| {
            let t = i as f32 / rate;
            let syllable = (t / 0.25) as usize;
            let env = ((t % 0.25) / 0.25 * std::f32::consts::PI).sin().powi(2);
            let f0 = 110.0 + 60.0 * (t * 0.7).sin() + 20.0 * (syllable % 3) as f32;
            let [fa, fb] = formants[syllable % 4];
            let mut v = 0.0;
            for h in 1..30 {
                let f = f0 * h as f32;
                if f > 3800.0 {
                    break;
                }
                let g =
                    (-((f - fa) / 150.0).powi(2)).exp() + 0.6 * (-((f - fb) / 200.0).powi(2)).exp();
                v += g * (2.0 * std::f32::consts::PI * f * t).sin();
            }
            v * env
        })
        .collect()
}

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
}

/// The synthetic episode: (title, in, out, track in, track out) of each cue.
fn build_episode(path: &Path) -> Vec<(&'static str, f64, f64, f64, f64)> {
    let lib = fixtures().join("library");
    let main = pcm_8k(&lib.join("Skyward Saga/sky1.flac"));
    let storm = pcm_8k(&lib.join("Skyward Saga/sky2.mp3"));
    let market = pcm_8k(&lib.join("Ember Road/02. Night Market.ogg"));
    let coda = pcm_8k(&lib.join("Hollow Crown/Disc 2/01 - Coda.flac"));
    let unknown = pcm_8k(&fixtures().join("queries/unknown_same-instruments.wav"));
    let r = 8000usize;
    let mut ep = vec![0.0f32; 74 * r];
    let mut put = |at_s: f64, src: &[f32], from_s: f64, len_s: f64, gain: &dyn Fn(f64) -> f32| {
        let (a, f) = ((at_s * r as f64) as usize, (from_s * r as f64) as usize);
        for k in 0..(len_s * r as f64) as usize {
            ep[a + k] += src[f + k] * gain(k as f64 / r as f64);
        }
    };
    let flat = |_: f64| 1.0f32;
    // 0-3 silence; a cue from inside the piece.
    put(3.0, &main, 2.0, 10.0, &flat);
    // 16-24 unknown music with the same instruments.
    put(16.0, &unknown, 0.0, 8.0, &flat);
    // 26-36 a cue under speech as loud as the music.
    let speech = synthetic_speech(10.0);
    let k = rms(&storm[5 * r..15 * r]) / rms(&speech);
    put(26.0, &storm, 5.0, 10.0, &flat);
    put(26.0, &speech, 0.0, 10.0, &|_| k);
    // 38-48 one cue cross-fading (46-48) into the next, 46-56: the cut
    // between them is mid-fade, at 47.
    put(38.0, &market, 0.0, 10.0, &|t| {
        if t < 8.0 {
            1.0
        } else {
            (10.0 - t) as f32 / 2.0
        }
    });
    put(46.0, &coda, 0.0, 10.0, &|t| {
        if t < 2.0 {
            t as f32 / 2.0
        } else {
            1.0
        }
    });
    // 60-70 the first cue again.
    put(60.0, &main, 2.0, 10.0, &flat);
    write_wav(path, &ep, 8000);
    vec![
        ("Main Theme", 3.0, 13.0, 2.0, 12.0),
        ("Storm Front", 26.0, 36.0, 5.0, 15.0),
        ("Night Market", 38.0, 47.0, 0.0, 9.0),
        ("Coda", 47.0, 56.0, 1.0, 10.0),
        ("Main Theme", 60.0, 70.0, 2.0, 12.0),
    ]
}

#[test]
fn scan_turns_an_episode_into_its_cue_sheet() {
    let (tmp, db) = indexed();
    let episode = tmp.path().join("episode.wav");
    let want = build_episode(&episode);
    let out = ostid(&db)
        .args(["scan", "--json"])
        .arg(&episode)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let mut got: Vec<ostid::cuesheet::Segment> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    got.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    let show: Vec<_> = got
        .iter()
        .map(|s| {
            (
                s.title.clone(),
                s.start_s,
                s.end_s,
                s.track_start_s,
                s.track_end_s,
            )
        })
        .collect();
    assert_eq!(got.len(), want.len(), "{show:?}");
    for (s, w) in got.iter().zip(&want) {
        assert_eq!(s.title, w.0, "{show:?}");
        for (g, e) in [
            (s.start_s, w.1),
            (s.end_s, w.2),
            (s.track_start_s, w.3),
            (s.track_end_s, w.4),
        ] {
            assert!((g - e).abs() <= 1.0, "{}: {g} for {e}; {show:?}", w.0);
        }
        assert_eq!(s.speed, 1.0);
        assert!((0.5..=1.0).contains(&s.confidence));
    }
}

#[test]
fn a_scan_on_several_threads_gives_the_cues_of_one_thread() {
    // The episode played 4 % fast (a PAL transfer): the warp search finds
    // the speed and later windows are looked at through it, so what a
    // window finds depends on the windows before it.
    let (tmp, db) = indexed();
    let episode = tmp.path().join("episode.wav");
    build_episode(&episode);
    let normal = pcm_8k(&episode);
    let fast: Vec<f32> = (0..(normal.len() as f64 / 1.04) as usize - 1)
        .map(|i| {
            let x = i as f64 * 1.04;
            let (k, f) = (x as usize, (x - x.floor()) as f32);
            normal[k] * (1.0 - f) + normal[k + 1] * f
        })
        .collect();
    let pal = tmp.path().join("pal.wav");
    write_wav(&pal, &fast, 8000);
    let scan = |threads: &str| {
        let out = ostid(&db)
            .args(["scan", "--json", "-j", threads])
            .arg(&pal)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let one = scan("1");
    let cues: Vec<serde_json::Value> = one
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let sped = cues
        .iter()
        .filter(|c| (c["speed"].as_f64().unwrap() - 1.04).abs() < 0.01)
        .count();
    assert!(sped >= 3, "{one}");
    for threads in ["2", "3"] {
        assert_eq!(scan(threads), one, "-j {threads}");
    }
}

#[test]
fn scan_formats_csv_table_and_a_timeline_with_one_bar_per_cue() {
    let (tmp, db) = indexed();
    let episode = tmp.path().join("episode.wav");
    let want = build_episode(&episode);
    let svg = tmp.path().join("cues.svg");
    let out = ostid(&db)
        .args(["scan", "--csv", "--svg"])
        .arg(&svg)
        .arg(&episode)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let csv = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        rows[0],
        "#,in,out,duration,title,work,composer,track in,track out"
    );
    assert_eq!(rows.len(), want.len() + 1, "{csv}");
    assert!(
        rows[1].starts_with("1,0:00:03.") || rows[1].starts_with("1,0:00:02."),
        "{}",
        rows[1]
    );
    assert!(
        rows[1].contains(",Main Theme,Skyward Saga,Ada Composer,0:00:0"),
        "{}",
        rows[1]
    );
    // The timeline: one labelled bar per cue.
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed SVG");
    let cues: Vec<_> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("cue"))
        .collect();
    assert_eq!(cues.len(), want.len());
    for (g, w) in cues.iter().zip(&want) {
        let bar = g
            .children()
            .find(|n| n.attribute("class") == Some("bar"))
            .expect("bar");
        assert!(bar.attribute("width").unwrap().parse::<f64>().unwrap() > 1.0);
        let label = g
            .children()
            .find(|n| n.attribute("class") == Some("label"))
            .expect("label");
        assert_eq!(label.text(), Some(w.0));
    }
    // The table.
    ostid(&db)
        .arg("scan")
        .arg(&episode)
        .assert()
        .code(0)
        .stdout(
            predicate::str::contains("Storm Front — Skyward Saga")
                .and(predicate::str::contains("confidence")),
        );
}

#[test]
fn scan_of_silence_or_unknown_music_is_an_empty_sheet_with_exit_1() {
    let (tmp, db) = indexed();
    let silence = tmp.path().join("silence.wav");
    write_wav(&silence, &vec![0.0; 8000 * 20], 8000);
    ostid(&db)
        .args(["scan", "--json"])
        .arg(&silence)
        .assert()
        .code(1)
        .stdout("");
    // Shorter than a window, unknown music.
    ostid(&db)
        .args(["scan", "--csv"])
        .arg(fixtures().join("queries/unknown_same-instruments.wav"))
        .assert()
        .code(1)
        .stdout("#,in,out,duration,title,work,composer,track in,track out\r\n");
    // Unreadable input.
    ostid(&db)
        .arg("scan")
        .arg(fixtures().join("damaged/not-audio.mp3"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "not-audio.mp3: not a recognised audio file",
        ));
    // A pipe.
    let wav = std::fs::read(fixtures().join("queries/Coda@2.500_clean.wav")).unwrap();
    ostid(&db)
        .args(["scan", "--json", "-"])
        .write_stdin(wav)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("\"title\":\"Coda\""));
}

/// A copy of the fixture library in a temporary folder (to move and delete).
fn library_copy(tmp: &Path) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &to.join(e.file_name()));
            } else {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }
    let lib = tmp.join("music");
    copy(&fixtures().join("library"), &lib);
    lib
}

fn stdout_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn list_works_and_stats_describe_the_index() {
    let (_tmp, db) = indexed();
    let out = ostid(&db).args(["list", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let tracks: Vec<ostid::cmd::manage::TrackLine> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(tracks.len(), 7);
    assert!(tracks
        .windows(2)
        .all(|w| w[0].work.to_lowercase() <= w[1].work.to_lowercase()));
    let coda = tracks.iter().find(|t| t.title == "Coda").unwrap();
    assert_eq!(coda.work, "Hollow Crown");
    assert!(coda.duration_s > 5.0 && coda.path.ends_with("01 - Coda.flac"));
    ostid(&db)
        .args(["list", "--work", "ember"])
        .assert()
        .code(0)
        .stdout(
            predicate::str::contains("Ember Road — 01 Opening")
                .and(predicate::str::contains("Skyward").not()),
        );
    ostid(&db)
        .args(["list", "--work", "nothing like it"])
        .assert()
        .code(1)
        .stdout("");

    let out = ostid(&db).args(["works", "--json"]).output().unwrap();
    let works: Vec<ostid::cmd::manage::WorkLine> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let counts: Vec<(&str, u64)> = works.iter().map(|w| (w.work.as_str(), w.tracks)).collect();
    assert_eq!(
        counts,
        vec![("Ember Road", 3), ("Hollow Crown", 2), ("Skyward Saga", 2)]
    );

    let out = ostid(&db).args(["stats", "--json"]).output().unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    let stats: ostid::cmd::manage::Stats = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(stats.tracks, 7);
    assert_eq!(stats.format_version, ostid::store::FORMAT_VERSION);
    assert!(stats.hashes > 1000 && stats.bytes_on_disk > 0);
    assert!(
        (stats.hours * 3600.0 - works.iter().map(|w| w.hours * 3600.0).sum::<f64>()).abs() < 10.0
    );
    assert_eq!(stats.params, ostid::params::Params::default());
}

#[test]
fn rm_removes_tracks_and_folders() {
    let tmp = TempDir::new().unwrap();
    let lib = library_copy(tmp.path());
    let db = tmp.path().join("index");
    ostid(&db).arg("index").arg(&lib).assert().code(0);
    // A folder, given with a relative path and `..`.
    let out = ostid(&db)
        .current_dir(lib.join("Skyward Saga"))
        .args(["rm", "--json", "../Ember Road"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let removed = stdout_lines(&out);
    assert_eq!(removed.len(), 3, "{removed:?}");
    // Its music is no longer found; the rest is.
    match_one(&db, "Opening@6.000_noise-gain.wav").code(1);
    match_one(&db, "Coda@2.500_clean.wav").code(0);
    // One file, then nothing left to remove.
    ostid(&db)
        .arg("rm")
        .arg(lib.join("Hollow Crown/Disc 2/01 - Coda.flac"))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("removed"));
    ostid(&db)
        .arg("rm")
        .arg(lib.join("Ember Road"))
        .assert()
        .code(1);
    let out = ostid(&db).args(["stats", "--json"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"tracks\":3,"));
    // Re-indexing brings them back, once.
    ostid(&db)
        .arg("index")
        .arg(&lib)
        .assert()
        .code(0)
        .stderr(predicate::str::contains("indexed 4, unchanged 3"));
}

#[test]
fn prune_drops_missing_files_but_not_an_unmounted_drive() {
    let tmp = TempDir::new().unwrap();
    let lib = library_copy(tmp.path());
    let db = tmp.path().join("index");
    ostid(&db).arg("index").arg(&lib).assert().code(0);
    std::fs::remove_file(lib.join("Skyward Saga/sky2.mp3")).unwrap();
    // Dry run: says what, changes nothing.
    ostid(&db)
        .args(["prune", "--dry-run"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("sky2.mp3"))
        .stderr(predicate::str::contains("would remove 1 tracks"));
    ostid(&db)
        .args(["stats", "--json"])
        .assert()
        .stdout(predicate::str::contains("\"tracks\":7,"));
    ostid(&db)
        .arg("prune")
        .assert()
        .code(0)
        .stderr(predicate::str::contains("removed 1 tracks"));
    ostid(&db)
        .args(["stats", "--json"])
        .assert()
        .stdout(predicate::str::contains("\"tracks\":6,"));
    // The whole folder gone (an unmounted drive): refused without --force.
    std::fs::rename(&lib, tmp.path().join("elsewhere")).unwrap();
    ostid(&db).arg("prune").assert().code(2).stderr(
        predicate::str::contains("is the drive unmounted").and(predicate::str::contains("--force")),
    );
    ostid(&db)
        .args(["stats", "--json"])
        .assert()
        .stdout(predicate::str::contains("\"tracks\":6,"));
    ostid(&db)
        .args(["prune", "--force"])
        .assert()
        .code(0)
        .stderr(predicate::str::contains("removed 6 tracks"));
}

/// `stats --json` without the bytes on disk, and `match --json` of every
/// fixture clip without timings: what an index answers.
fn answers(db: &Path) -> (serde_json::Value, Vec<serde_json::Value>) {
    let out = ostid(db).args(["stats", "--json"]).output().unwrap();
    let mut stats = stdout_lines(&out).remove(0);
    let obj = stats.as_object_mut().unwrap();
    obj.remove("bytes_on_disk");
    obj.remove("bytes_per_hour");
    let out = ostid(db)
        .args(["match", "--json"])
        .args(known_queries().iter().map(|q| &q.0))
        .output()
        .unwrap();
    let mut lines = stdout_lines(&out);
    for l in &mut lines {
        let o = l.as_object_mut().unwrap();
        o.remove("decode_ms");
        o.remove("match_ms");
    }
    (stats, lines)
}

#[test]
fn a_crash_at_a_failpoint_resumes_to_the_same_index() {
    let (_tmp, clean_db) = indexed();
    let want = answers(&clean_db);
    let tmp = TempDir::new().unwrap();
    let db = tmp.path().join("index");
    let out = ostid(&db)
        .args(["index", "-j", "1"])
        .arg(fixtures().join("library"))
        .env("OSTID_FAILPOINT_ABORT_AFTER_TRACKS", "3")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), None, "aborted by the failpoint");
    ostid(&db)
        .args(["stats", "--json"])
        .assert()
        .stdout(predicate::str::contains("\"tracks\":3,"));
    ostid(&db)
        .arg("index")
        .arg(fixtures().join("library"))
        .assert()
        .code(0)
        .stderr(predicate::str::contains("indexed 4, unchanged 3"));
    assert_eq!(answers(&db), want);
}

/// The process was killed by the merge failpoint `step` (it aborts: no
/// exit code), and said so.
fn assert_aborted_at_failpoint(out: &Output, step: &str) {
    assert_eq!(out.status.code(), None, "{step}: aborted at the failpoint");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("merge failpoint"),
        "{step}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Files in the index's postings folder, and segments `verify` checked.
fn postings_files_and_segments(db: &Path) -> (usize, u64) {
    let files = std::fs::read_dir(db.join("postings")).unwrap().count();
    let out = ostid(db).args(["verify", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "verify fails: {out:?}");
    let report = stdout_lines(&out).remove(0);
    (files, report["checked"]["segments"].as_u64().unwrap())
}

#[test]
fn a_crash_at_any_step_of_a_merge_leaves_an_index_that_answers_as_before() {
    let (_tmp, clean_db) = indexed();
    let want = answers(&clean_db);
    for step in ["written", "committed"] {
        let tmp = TempDir::new().unwrap();
        let db = tmp.path().join("index");
        // One track per commit: the fourth fills level 0 and starts a merge.
        let out = ostid(&db)
            .args(["index", "-j", "1"])
            .arg(fixtures().join("library"))
            .env("OSTID_COMMIT_EACH_TRACK", "1")
            .env("OSTID_FAILPOINT_ABORT_IN_MERGE", step)
            .output()
            .unwrap();
        assert_aborted_at_failpoint(&out, step);
        // The index opens, verifies, and holds the four committed tracks.
        let (files, segments) = postings_files_and_segments(&db);
        let expect = if step == "written" { 4 } else { 1 };
        assert_eq!(segments, expect, "{step}: segments after the crash");
        assert!(
            files > segments as usize,
            "{step}: the crash left files behind"
        );
        let out = ostid(&db).args(["list", "--json"]).output().unwrap();
        assert_eq!(stdout_lines(&out).len(), 4, "{step}");
        // The next run finishes, removes what the crash left, and answers
        // as an index built without one.
        ostid(&db)
            .arg("index")
            .arg(fixtures().join("library"))
            .env("OSTID_COMMIT_EACH_TRACK", "1")
            .assert()
            .code(0)
            .stderr(predicate::str::contains("indexed 3, unchanged 4"));
        let (files, segments) = postings_files_and_segments(&db);
        assert_eq!(files as u64, segments, "{step}: stray files remain");
        assert_eq!(answers(&db), want, "{step}");
    }
}

#[test]
fn merged_segments_answer_as_one_commit_does() {
    let (_tmp, clean_db) = indexed();
    let want = answers(&clean_db);
    let tmp = TempDir::new().unwrap();
    let db = tmp.path().join("index");
    ostid(&db)
        .args(["index", "-j", "1"])
        .arg(fixtures().join("library"))
        .env("OSTID_COMMIT_EACH_TRACK", "1")
        .assert()
        .code(0);
    // Seven small commits: the first four merged into one, which stays at
    // level 0 and is merged again with the last three.
    assert_eq!(postings_files_and_segments(&db), (1, 1));
    assert_eq!(answers(&db), want);
}

#[test]
fn compact_drops_removed_tracks_postings_and_answers_as_before() {
    let (_tmp, db) = indexed();
    ostid(&db)
        .arg("rm")
        .arg(fixtures().join("library").join("Ember Road"))
        .assert()
        .code(0);
    let want = answers(&db);
    let postings_bytes = |db: &Path| -> u64 {
        std::fs::read_dir(db.join("postings"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    };
    let before = postings_bytes(&db);
    let out = ostid(&db).args(["compact", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report = stdout_lines(&out).remove(0);
    assert_eq!(report["files_before"], 1);
    assert_eq!(report["files_after"], 1);
    assert!(
        postings_bytes(&db) < before,
        "the removed tracks' postings are gone"
    );
    assert_eq!(postings_files_and_segments(&db), (1, 1));
    assert_eq!(answers(&db), want);
    // Human summary on stderr, nothing on stdout.
    ostid(&db)
        .arg("compact")
        .assert()
        .code(0)
        .stdout("")
        .stderr(predicate::str::contains(
            "compacted 1 postings files into 1",
        ));
}

#[test]
fn a_sigkill_mid_run_resumes_to_the_same_index() {
    let (_tmp, clean_db) = indexed();
    let want = answers(&clean_db);
    let tmp = TempDir::new().unwrap();
    let db = tmp.path().join("index");
    let long = tmp.path().join("long");
    std::fs::create_dir(&long).unwrap();
    write_long_wav(&long.join("long.wav"), 3600);
    // One worker decodes the long file (longest first), the other commits
    // fixture tracks one by one; kill once some are on disk.
    let mut child = ostid_process(&db)
        .args(["index", "-j", "2"])
        .arg(&long)
        .arg(fixtures().join("library"))
        .env("OSTID_COMMIT_EACH_TRACK", "1")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let postings = db.join("postings");
    let t0 = std::time::Instant::now();
    while std::fs::read_dir(&postings).map_or(0, |d| d.count()) < 3 {
        assert!(t0.elapsed().as_secs() < 60, "no commits seen");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), None, "killed, not finished");
    // The store opens; what was committed answers.
    let out = ostid(&db).args(["list", "--json"]).output().unwrap();
    let done = stdout_lines(&out).len();
    assert!((2..=7).contains(&done), "{done} tracks committed");
    // The next run finishes the rest, the long file among them (so the kill
    // landed mid-run), without duplicates.
    ostid(&db)
        .args(["index", "-j", "2"])
        .arg(&long)
        .arg(fixtures().join("library"))
        .assert()
        .code(0)
        .stderr(predicate::str::contains(format!(
            "indexed {}, unchanged {done}",
            8 - done
        )));
    ostid(&db).arg("rm").arg(&long).assert().code(0);
    let (mut stats, lines) = answers(&db);
    let (mut want_stats, want_lines) = want;
    // Removing the long file leaves counters of the same tracks.
    for s in [&mut stats, &mut want_stats] {
        s.as_object_mut().unwrap().remove("hours");
    }
    assert_eq!(stats, want_stats);
    assert_eq!(lines, want_lines);
}

#[test]
fn a_decoder_panic_on_hostile_input_is_that_files_error() {
    // Found by `cargo fuzz`: a Matroska header whose size field makes
    // symphonia's EBML reader overflow (a panic in debug builds).
    let (_tmp, db) = indexed();
    let bad = fixtures().join("fuzzed/mkv-size-overflow.mka");
    let out = ostid(&db).arg("match").arg(&bad).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("mkv-size-overflow.mka: "), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    ostid(&db)
        .arg("index")
        .arg(fixtures().join("fuzzed"))
        .arg(fixtures().join("library"))
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("failed 2")
                .and(predicate::str::contains("unchanged 7"))
                .and(predicate::str::contains("panicked").not()),
        );
    // Also found by it: a 567-byte WAV claiming 1.95 GHz, which made the
    // resampler plan gigabytes (1.2 GB, 8 s); now refused at once.
    ostid(&db)
        .arg("match")
        .arg(fixtures().join("fuzzed/wav-absurd-rate.wav"))
        .timeout(std::time::Duration::from_secs(20))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "claims a sample rate of 1951612544 Hz",
        ));
}

#[test]
fn verify_finds_a_damaged_index_and_rebuild_recovers() {
    let (tmp, db) = indexed();
    let out = ostid(&db).args(["verify", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report: ostid::cmd::manage::VerifyReport =
        serde_json::from_slice(out.stdout.trim_ascii()).unwrap();
    assert!(report.ok && report.problems.is_empty());
    assert_eq!(report.checked.tracks, 7);
    assert!(report.checked.postings > 1000);
    // Damage a postings file in the middle of its data.
    let seg = std::fs::read_dir(db.join("postings"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&seg).unwrap();
    let n = bytes.len();
    for b in &mut bytes[n / 2..n / 2 + 64] {
        *b = 0xFF;
    }
    std::fs::write(&seg, &bytes).unwrap();
    ostid(&db).arg("verify").assert().code(1).stdout(
        predicate::str::contains("BROKEN")
            .and(predicate::str::contains("--rebuild"))
            .and(predicate::str::contains("seg-")),
    );
    // A catalogue that will not open names the way back; queries still
    // answer from the view the last writer left.
    let sled_dir = db.join("sled");
    for e in std::fs::read_dir(&sled_dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::write(&p, b"not a sled file").unwrap();
        }
    }
    ostid(&db)
        .arg("list")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("ostid index --rebuild"));
    match_one(&db, "Coda@2.500_clean.wav")
        .code(0)
        .stdout(predicate::str::starts_with("Coda"));
    std::fs::remove_file(db.join("view.bin")).unwrap();
    match_one(&db, "Coda@2.500_clean.wav")
        .code(2)
        .stderr(predicate::str::contains("ostid index --rebuild"));
    ostid(&db)
        .args(["index", "--rebuild"])
        .arg(fixtures().join("library"))
        .assert()
        .code(0);
    ostid(&db)
        .arg("verify")
        .assert()
        .code(0)
        .stdout(predicate::str::starts_with("ok: 7 tracks"));
    drop(tmp);
}

#[test]
fn a_moved_file_is_relinked_without_decoding_or_a_stale_copy() {
    let tmp = TempDir::new().unwrap();
    let lib = library_copy(tmp.path());
    let db = tmp.path().join("index");
    ostid(&db).arg("index").arg(&lib).assert().code(0);
    // Move one file to another folder, rename another in place.
    std::fs::create_dir(lib.join("Moved")).unwrap();
    std::fs::rename(
        lib.join("Skyward Saga/sky2.mp3"),
        lib.join("Moved/storm.mp3"),
    )
    .unwrap();
    std::fs::rename(
        lib.join("Ember Road/01 - Opening.wav"),
        lib.join("Ember Road/01 - Opening (remaster).wav"),
    )
    .unwrap();
    ostid(&db)
        .arg("index")
        .arg(&lib)
        .assert()
        .code(0)
        .stderr(predicate::str::contains(
            "indexed 0, unchanged 5, damaged 0, failed 0, moved 2",
        ));
    let out = ostid(&db).args(["list", "--json"]).output().unwrap();
    let paths: Vec<String> = stdout_lines(&out)
        .iter()
        .map(|l| l["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(paths.len(), 7);
    assert!(
        paths.iter().any(|p| p.ends_with("Moved/storm.mp3")),
        "{paths:?}"
    );
    assert!(!paths.iter().any(|p| p.ends_with("sky2.mp3")), "{paths:?}");
    assert!(paths
        .iter()
        .any(|p| p.ends_with("01 - Opening (remaster).wav")));
    // A title taken from the file name follows the rename.
    let titles: Vec<(String, String)> = stdout_lines(&out)
        .iter()
        .map(|l| {
            (
                l["path"].as_str().unwrap().to_string(),
                l["title"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let (_, title) = titles
        .iter()
        .find(|(p, _)| p.ends_with("01 - Opening (remaster).wav"))
        .unwrap();
    assert_eq!(title, "Opening (remaster)", "{titles:?}");
    // Metadata from tags stays, the answer points at the new path.
    let out = ostid(&db)
        .args(["match", "--json"])
        .arg(fixtures().join("queries/Storm Front@7.250_resampled-11025.wav"))
        .output()
        .unwrap();
    let m = json_lines(&out).remove(0).best.unwrap();
    assert_eq!(m.title, "Storm Front");
    assert!(m.path.ends_with("Moved/storm.mp3"));
    ostid(&db).arg("verify").assert().code(0);
    // Nothing left to do.
    ostid(&db)
        .arg("index")
        .arg(&lib)
        .assert()
        .stderr(predicate::str::contains(
            "indexed 0, unchanged 7, damaged 0, failed 0;",
        ));
}

#[test]
fn damaged_files_of_every_format_are_reported_never_a_panic() {
    let tmp = TempDir::new().unwrap();
    let bad = tmp.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    let lib = fixtures().join("library");
    let sources = [
        lib.join("Skyward Saga/sky1.flac"),
        lib.join("Skyward Saga/sky2.mp3"),
        lib.join("Ember Road/01 - Opening.wav"),
        lib.join("Ember Road/02. Night Market.ogg"),
        lib.join("Ember Road/03_Last Stand.opus"),
        lib.join("Hollow Crown/Disc 1/01 - Prelude.m4a"),
        fixtures().join("unsupported/ac3-in-matroska.mka"),
    ];
    let mut n = 0;
    for src in &sources {
        let data = std::fs::read(src).unwrap();
        let ext = src.extension().unwrap().to_str().unwrap();
        let len = data.len();
        let mut variants: Vec<(&str, Vec<u8>)> = vec![
            ("truncated", data[..len / 3].to_vec()),
            ("empty", Vec::new()),
            ("header", {
                let mut d = data.clone();
                d[..64.min(len)].fill(0);
                d
            }),
            ("middle", {
                let mut d = data.clone();
                let at = len * 2 / 5;
                for (i, b) in d[at..(at + 4096).min(len)].iter_mut().enumerate() {
                    *b ^= (i as u8).wrapping_mul(31) | 1;
                }
                d
            }),
            ("tail-only", data[len / 2..].to_vec()),
        ];
        if ext == "wav" {
            // Sizes claiming gigabytes that are not there.
            let mut d = data.clone();
            d[4..8].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
            let at = d.windows(4).position(|w| w == b"data").unwrap();
            d[at + 4..at + 8].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
            variants.push(("huge-size", d));
        }
        for (kind, bytes) in variants {
            std::fs::write(bad.join(format!("{kind}.{ext}")), bytes).unwrap();
            n += 1;
        }
    }
    let db = tmp.path().join("index");
    let out = ostid(&db).arg("index").arg(&bad).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let summary = err.lines().last().unwrap();
    let count = |what: &str| -> usize {
        let at = summary.find(what).unwrap_or_else(|| panic!("{summary}")) + what.len() + 1;
        summary[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (indexed, damaged, failed) = (count("indexed"), count("damaged"), count("failed"));
    assert_eq!(indexed + damaged + failed, n, "{err}");
    // Every damaged or failed file is named with its reason.
    let reported = err.lines().filter(|l| l.starts_with("ostid: ")).count();
    assert_eq!(reported, damaged + failed, "{err}");
    assert!(failed >= sources.len(), "every empty file fails: {err}");
    // The index holds what decoded and is consistent.
    ostid(&db).arg("verify").assert().code(0);
}

#[test]
fn a_clip_longer_than_ten_minutes_is_identified_from_its_start() {
    let (tmp, db) = indexed();
    let long = tmp.path().join("eleven-minutes.wav");
    write_long_wav(&long, 660);
    ostid(&db)
        .args(["match", "--json"])
        .arg(&long)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("\"match\":null"))
        .stderr(predicate::str::contains(
            "longer than 10:00.0; identified from its start",
        ));
}

#[test]
fn a_full_disk_is_a_clear_error_and_the_index_stays_consistent() {
    let tmp = TempDir::new().unwrap();
    let db = tmp.path().join("index");
    // A file-size limit of 20 KB: the postings file cannot be written.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -f 40; exec "$0" "$@""#)
        .arg(assert_cmd::cargo::cargo_bin("ostid"))
        .arg("--db")
        .arg(&db)
        .arg("index")
        .arg(fixtures().join("library"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("disk full?") && err.contains("run the same command again"),
        "{err}"
    );
    ostid(&db).arg("verify").assert().code(0);
    ostid(&db)
        .arg("index")
        .arg(fixtures().join("library"))
        .assert()
        .code(0)
        .stderr(predicate::str::contains("indexed 7, unchanged 0"));
    ostid(&db).arg("verify").assert().code(0);
}

#[test]
fn a_file_name_that_is_not_utf8_is_indexed_listed_and_removed() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = TempDir::new().unwrap();
    let lib = tmp.path().join("lib");
    std::fs::create_dir(&lib).unwrap();
    let name = std::ffi::OsStr::from_bytes(b"Coda caf\xe9.flac");
    let file = lib.join(name);
    std::fs::copy(
        fixtures().join("library/Hollow Crown/Disc 2/01 - Coda.flac"),
        &file,
    )
    .unwrap();
    let db = tmp.path().join("index");
    ostid(&db).arg("index").arg(&lib).assert().code(0);
    let out = ostid(&db)
        .args(["match", "--json"])
        .arg(fixtures().join("queries/Coda@2.500_clean.wav"))
        .output()
        .unwrap();
    let m = json_lines(&out).remove(0).best.unwrap();
    assert!(m.path.ends_with("Coda caf\u{fffd}.flac"), "{}", m.path);
    ostid(&db).arg("verify").assert().code(0);
    // Unchanged on a second run (the exact bytes are the key).
    ostid(&db)
        .arg("index")
        .arg(&lib)
        .assert()
        .stderr(predicate::str::contains("indexed 0, unchanged 1"));
    ostid(&db).arg("rm").arg(&file).assert().code(0);
    ostid(&db)
        .args(["stats", "--json"])
        .assert()
        .stdout(predicate::str::contains("\"tracks\":0,"));
}

/// Music under far louder speech: the first look at the clip finds no
/// match, the close look (query peaks of smaller neighbourhoods) names it.
/// The synthetic voice is sparse (harmonics in syllable bursts), so it takes
/// 26 dB over the music to hide it from the first look (at 24 dB the first
/// look names it since the chance rule; at 28 dB the close look no longer can).
#[test]
fn music_under_speech_is_found_by_the_close_look() {
    let tmp = TempDir::new().expect("tempdir");
    let lib = fixtures().join("library");
    let market = pcm_8k(&lib.join("Ember Road/02. Night Market.ogg"));
    let r = 8000;
    let music = &market[2 * r..10 * r];
    let speech = synthetic_speech(8.0);
    let k = rms(music) / rms(&speech) * 10f32.powf(26.0 / 20.0);
    let mix: Vec<f32> = music
        .iter()
        .zip(&speech)
        .map(|(m, s)| (m + s * k) * 0.3)
        .collect();
    let clip = tmp.path().join("under-speech.wav");
    write_wav(&clip, &mix, 8000);

    // Without the close look (recorded in the index's parameters): no match.
    let mut without = ostid::params::Params::default();
    without.close_look.enabled = false;
    let plain = tmp.path().join("plain");
    indexed_with(&without, &lib, &plain);
    ostid(&plain)
        .args(["match", "--json"])
        .arg(&clip)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(r#""match":null"#));

    let (_keep, db) = indexed();
    let out = ostid(&db)
        .args(["match", "--json"])
        .arg(&clip)
        .assert()
        .code(0)
        .get_output()
        .clone();
    let m = json_lines(&out)[0].best.clone().expect("named");
    assert_eq!(m.title, "Night Market");
    assert!((m.offset_s - 2.0).abs() < 0.05, "offset {}", m.offset_s);
    assert!(
        m.chance <= without.decision.max_chance,
        "chance {}",
        m.chance
    );
}

/// The glance (a first look at peaks of the index's own size, 16 targets
/// each) names every fixture clip it names as the straight look does: the
/// same recording at the same offset, from fewer votes (`src/glance.rs`
/// tests that it names clips at all, and nothing unknown).
#[test]
fn the_glance_names_what_the_straight_look_names() {
    let tmp = TempDir::new().expect("tempdir");
    let mut without = ostid::params::Params::default();
    without.glance.enabled = false;
    let plain = tmp.path().join("plain");
    indexed_with(&without, &fixtures().join("library"), &plain);
    let (_keep, db) = indexed();
    let queries: Vec<PathBuf> = known_queries().into_iter().map(|q| q.0).collect();
    let answers = |db: &Path| {
        let out = ostid(db)
            .args(["match", "--json"])
            .args(&queries)
            .output()
            .expect("run");
        json_lines(&out)
            .into_iter()
            .map(|l| l.best)
            .collect::<Vec<_>>()
    };
    let (glanced, full) = (answers(&db), answers(&plain));
    assert_eq!(glanced.len(), queries.len());
    let mut fewer_votes = 0;
    for ((q, g), f) in queries.iter().zip(&glanced).zip(&full) {
        let (g, f) = (g.as_ref().expect("named"), f.as_ref().expect("named"));
        assert_eq!(g.path, f.path, "{}", q.display());
        assert!((g.offset_s - f.offset_s).abs() < 0.1, "{}", q.display());
        fewer_votes += usize::from(g.score < f.score);
    }
    // Named at a glance: from its fewer landmarks.
    assert!(fewer_votes > 0);
}

/// One clip on two threads has its looks spread over them (the warp
/// search's probes, the close look beside the search); its answer is the
/// one a thread taking them in turn gives, for every fixture clip: warped
/// ones (whose search stops early), unknown music and noise.
#[test]
fn a_clip_spread_over_threads_has_the_answer_of_one_thread() {
    let tmp = TempDir::new().expect("tempdir");
    let (_keep, db) = indexed();
    let noise_clip = tmp.path().join("noise.wav");
    write_wav(&noise_clip, &noise(10.0, 7), 8000);
    let mut clips: Vec<PathBuf> = std::fs::read_dir(fixtures().join("queries"))
        .expect("queries")
        .map(|e| e.expect("entry").path())
        .collect();
    clips.sort();
    clips.push(noise_clip);
    let answer = |clip: &Path, top: &str, threads: &str| {
        let out = ostid(&db)
            .args(["match", "--json", "--top", top, "-j", threads])
            .arg(clip)
            .output()
            .expect("run");
        let line = json_lines(&out).pop().expect("one line");
        (line.best, line.alternatives)
    };
    // One answer, and runner-ups (which skip the glance). With two
    // threads the warp search and the close look run beside the straight
    // look; with one, after it.
    for top in ["1", "3"] {
        let mut named = 0;
        for clip in &clips {
            let spread = answer(clip, top, "2");
            assert_eq!(spread, answer(clip, top, "1"), "{}", clip.display());
            named += usize::from(spread.0.is_some());
        }
        // Known clips named (warped ones among them), the rest not.
        assert_eq!(named, known_queries().len(), "--top {top}");
    }
}

/// Pink-ish noise (white noise through a leaky integrator), seeded.
fn noise(seconds: f32, seed: u64) -> Vec<f32> {
    let mut x = seed | 1;
    let mut y = 0.0f32;
    (0..(seconds * 8000.0) as usize)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let white = (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            y = 0.97 * y + white;
            0.3 * y
        })
        .collect()
}

/// The chance votes of a clip grow with its length; the rule knows it, so
/// a minute of noise is no more named than a few seconds of it.
#[test]
fn noise_of_any_length_is_no_match() {
    let tmp = TempDir::new().expect("tempdir");
    let (_keep, db) = indexed();
    for (seconds, seed) in [(3.0, 1), (10.0, 2), (60.0, 3)] {
        let clip = tmp.path().join(format!("noise-{seconds}.wav"));
        write_wav(&clip, &noise(seconds, seed), 8000);
        ostid(&db)
            .args(["match", "--json"])
            .arg(&clip)
            .assert()
            .code(1)
            .stdout(predicate::str::contains(r#""match":null"#));
    }
}

/// `chance` is reported with every answer, an answer is named only when it
/// is at most `--max-chance`, and confidence falls as chance rises.
#[test]
fn max_chance_sets_how_sure_an_answer_must_be() {
    let (_keep, db) = indexed();
    let clip = fixtures().join("queries/Coda@2.500_clean.wav");
    let out = ostid(&db)
        .args(["match", "--json"])
        .arg(&clip)
        .assert()
        .code(0)
        .get_output()
        .clone();
    let m = json_lines(&out)[0].best.clone().expect("named");
    let defaults = ostid::params::DecisionParams::default();
    assert!(
        m.chance > 0.0 && m.chance <= defaults.max_chance,
        "{}",
        m.chance
    );
    assert!(m.confidence > 0.99, "{}", m.confidence);
    // Stricter than any answer can be: no match (a figure stricter than this
    // answer's own may still pass: the close look can be surer than the first).
    ostid(&db)
        .args(["match", "--json", "--max-chance", "1e-300"])
        .arg(&clip)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(r#""match":null"#));
    let c = |e: f64| ostid::chance::confidence(e, &defaults);
    assert!(c(1e-9) > c(defaults.max_chance) && c(defaults.max_chance) > c(1e-2));
    for bad in ["0", "-1", "x", "inf"] {
        ostid(&db)
            .args(["match", &format!("--max-chance={bad}")])
            .arg(&clip)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("positive number"));
    }
}

/// Whether `program` can be run here (a shell or a man reader).
fn have(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn completion_scripts_are_valid_for_each_shell_present() {
    let tmp = TempDir::new().expect("tempdir");
    // No index is needed, nor made.
    let db = tmp.path().join("none");
    // (shell, how it checks a script's syntax without running it)
    let checks: [(&str, &[&str]); 3] = [
        ("bash", &["-n"]),
        ("zsh", &["-n"]),
        ("fish", &["--no-execute"]),
    ];
    let mut checked = 0;
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = ostid(&db)
            .args(["completions", shell])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = String::from_utf8(out.stdout).expect("utf-8");
        // Every subcommand is offered.
        for sub in [
            "index",
            "match",
            "scan",
            "list",
            "verify",
            "compact",
            "completions",
        ] {
            assert!(script.contains(sub), "{shell} script lacks {sub}");
        }
        let Some((_, flags)) = checks.iter().find(|(s, _)| *s == shell) else {
            continue;
        };
        if !have(shell) {
            eprintln!("skipped: {shell} is not installed, its script is not syntax-checked");
            continue;
        }
        let path = tmp.path().join(format!("ostid.{shell}"));
        std::fs::write(&path, &script).expect("write script");
        let check = std::process::Command::new(shell)
            .args(*flags)
            .arg(&path)
            .output()
            .expect("run shell");
        assert!(
            check.status.success(),
            "{shell} rejects the script: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        checked += 1;
    }
    assert!(!db.exists(), "completions made an index");
    // bash is everywhere the tests run (CI included).
    assert!(checked >= 1, "no shell checked a script");
    ostid(&db)
        .args(["completions", "tcsh"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid value 'tcsh'"));
}

#[test]
fn man_page_covers_every_subcommand_and_renders() {
    let tmp = TempDir::new().expect("tempdir");
    let out = ostid(&tmp.path().join("none"))
        .arg("man")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    let page = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        page.starts_with(".ie") || page.starts_with(".TH"),
        "{}",
        &page[..80.min(page.len())]
    );
    assert!(page.contains(".TH ostid 1"));
    for sub in [
        "INDEX", "MATCH", "SCAN", "LIST", "WORKS", "STATS", "RM", "PRUNE", "VERIFY", "COMPACT",
    ] {
        assert!(
            page.contains(&format!(".SH \"OSTID {sub}\"")),
            "no section for {sub}"
        );
    }
    assert!(page.contains("max\\-chance"), "match's options are listed");
    // A real reader renders it without warnings, where one is installed.
    if have("groff") {
        let path = tmp.path().join("ostid.1");
        std::fs::write(&path, &page).expect("write page");
        let r = std::process::Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&path)
            .output()
            .expect("run groff");
        assert!(r.status.success());
        assert!(
            r.stderr.is_empty(),
            "groff: {}",
            String::from_utf8_lossy(&r.stderr)
        );
    } else {
        eprintln!("skipped: groff is not installed, the page is not rendered");
    }
}

/// The answers of `match --json` without the timings.
fn answers_without_timings(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).expect("json line");
            let o = v.as_object_mut().expect("object");
            o.retain(|k, _| !k.ends_with("_ms"));
            v
        })
        .collect()
}

#[test]
fn lookups_read_from_the_file_answer_as_mapped_ones() {
    // Large postings files are read with `pread` (bounded memory at any
    // library size), small ones through the mapping; the fixture index is
    // small, so both ways are forced here and must agree on every clip:
    // known, warped (the warp search reads the same hashes many times,
    // through the per-thread cache) and unknown.
    let (_tmp, db) = indexed();
    let mut clips: Vec<PathBuf> = known_queries().into_iter().map(|q| q.0).collect();
    clips.push(fixtures().join("queries/unknown_same-instruments.wav"));
    let run = |above: &str, top: &str| {
        let out = ostid(&db)
            .env("OSTID_READ_LOOKUPS_ABOVE", above)
            .args(["match", "--json", "--top", top, "-j", "2"])
            .args(&clips)
            .output()
            .expect("run");
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        answers_without_timings(&out)
    };
    for top in ["1", "3"] {
        let (mapped, read) = (run("18446744073709551615", top), run("0", top));
        assert_eq!(mapped.len(), clips.len());
        assert_eq!(mapped, read, "--top {top}");
    }
    ostid(&db)
        .env("OSTID_READ_LOOKUPS_ABOVE", "lots")
        .args(["match"])
        .arg(&clips[0])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "OSTID_READ_LOOKUPS_ABOVE=lots is not a number of bytes",
        ));
}

#[test]
fn a_folder_given_to_match_or_scan_is_named_as_a_folder() {
    let (_tmp, db) = indexed();
    let folder = fixtures().join("queries");
    ostid(&db)
        .arg("match")
        .arg(&folder)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is a folder, not an audio file"))
        .stderr(predicate::str::contains("ostid match DIR/*.wav"));
    ostid(&db)
        .arg("scan")
        .arg(&folder)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is a folder, not an audio file"));
}

/// Read a cue file the way its own world does, outside ostid: Python's
/// standard library parses it and prints [[start_s, end_s or null, text]].
const CUE_READER: &str = r#"
import csv, json, re, sys
fmt, text = sys.argv[1], open(sys.argv[2], encoding="utf-8", newline="").read()
out = []
def ts(h, m, s, ms):
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000
if fmt in ("srt", "vtt"):
    sep = "," if fmt == "srt" else r"\."
    if fmt == "vtt":
        assert text.startswith("WEBVTT"), "no WEBVTT header"
    blocks = [b for b in re.split(r"\r?\n\r?\n", text.strip()) if b and b != "WEBVTT"]
    for b in blocks:
        lines = b.splitlines()
        assert lines[0].isdigit(), lines
        m = re.fullmatch(rf"(\d\d):(\d\d):(\d\d){sep}(\d\d\d) --> (\d\d):(\d\d):(\d\d){sep}(\d\d\d)", lines[1])
        assert m, lines[1]
        g = m.groups()
        out.append([ts(*g[:4]), ts(*g[4:]), "\n".join(lines[2:])])
elif fmt == "audacity":
    for row in csv.reader(text.splitlines(), delimiter="\t"):
        assert len(row) == 3, row
        out.append([float(row[0]), float(row[1]), row[2]])
elif fmt == "ffmetadata":
    lines = text.splitlines()
    assert lines[0] == ";FFMETADATA1"
    chapter = None
    for line in lines[1:]:
        if line == "[CHAPTER]":
            chapter = {}
            out.append(chapter)
        elif line:
            k, v = line.split("=", 1)
            chapter[k] = v
    assert all(c["TIMEBASE"] == "1/1000" for c in out)
    out = [[int(c["START"]) / 1000, int(c["END"]) / 1000, c["title"]] for c in out]
elif fmt == "cue":
    assert text.startswith('FILE "episode.wav" WAVE'), text[:40]
    for track in text.split("  TRACK ")[1:]:
        title = re.search(r'TITLE "([^"]*)"', track).group(1)
        m, s, f = map(int, re.search(r"INDEX 01 (\d\d):(\d\d):(\d\d)", track).groups())
        out.append([m * 60 + s + f / 75, None, title])
print(json.dumps(out))
"#;

#[test]
fn scan_cue_formats_read_back_with_independent_readers() {
    let (tmp, db) = indexed();
    let episode = tmp.path().join("episode.wav");
    let want = build_episode(&episode);
    let scan = |args: &[&str]| {
        let out = ostid(&db)
            .arg("scan")
            .args(args)
            .arg(&episode)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let truth: Vec<ostid::cuesheet::Segment> = String::from_utf8(scan(&["--json"]))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(truth.len(), want.len());
    if !have("python3") {
        eprintln!("skipped: python3 is not installed, the cue files are not read back");
        return;
    }
    for format in ["srt", "vtt", "audacity", "ffmetadata", "cue"] {
        let bytes = scan(&["--format", format]);
        let file = tmp.path().join(format!("cues.{format}"));
        std::fs::write(&file, &bytes).unwrap();
        let read = std::process::Command::new("python3")
            .args(["-c", CUE_READER, format])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            read.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&read.stderr)
        );
        let cues: Vec<(f64, Option<f64>, String)> = serde_json::from_slice(&read.stdout).unwrap();
        assert_eq!(cues.len(), truth.len(), "{format}");
        // CUE frames are 1/75 s; the others keep milliseconds.
        let tolerance = if format == "cue" { 1.0 / 75.0 } else { 0.001 };
        for ((start, end, text), s) in cues.iter().zip(&truth) {
            assert!(
                (start - s.start_s).abs() <= tolerance,
                "{format}: {start} vs {}",
                s.start_s
            );
            if let Some(end) = end {
                assert!(
                    (end - s.end_s).abs() <= tolerance,
                    "{format}: {end} vs {}",
                    s.end_s
                );
            }
            let name = if format == "cue" {
                s.title.clone()
            } else {
                format!("{} — {} (track ", s.title, s.work)
            };
            assert!(text.starts_with(&name), "{format}: {text:?} for {name:?}");
        }
    }
    // FFmpeg reads the chapters back into a file, where it is installed.
    if !(have("ffmpeg") && have("ffprobe")) {
        eprintln!("skipped: ffmpeg is not installed, the chapters are not read back by ffprobe");
        return;
    }
    let meta = tmp.path().join("cues.ffmetadata");
    let with_chapters = tmp.path().join("chaptered.mka");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&episode)
        .arg("-i")
        .arg(&meta)
        .args(["-map_metadata", "1", "-map", "0:a", "-codec", "copy"])
        .arg(&with_chapters)
        .status()
        .unwrap();
    assert!(status.success());
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_chapters", "-of", "json"])
        .arg(&with_chapters)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&probe.stdout).unwrap();
    let chapters = v["chapters"].as_array().expect("chapters");
    assert_eq!(chapters.len(), truth.len());
    for (c, s) in chapters.iter().zip(&truth) {
        let start: f64 = c["start_time"].as_str().unwrap().parse().unwrap();
        assert!(
            (start - s.start_s).abs() <= 0.001,
            "{start} vs {}",
            s.start_s
        );
        assert!(c["tags"]["title"].as_str().unwrap().starts_with(&s.title));
    }
}

#[test]
fn ogg_vorbis_and_opus_cut_short_are_reported_truncated() {
    let tmp = TempDir::new().unwrap();
    let db = tmp.path().join("index");
    let cut = tmp.path().join("cut");
    std::fs::create_dir(&cut).unwrap();
    for name in ["02. Night Market.ogg", "03_Last Stand.opus"] {
        let src = walk_fixture(name);
        let bytes = std::fs::read(&src).unwrap();
        // An interrupted download: the first 30 kB, no end-of-stream page.
        std::fs::write(cut.join(name), &bytes[..30_000]).unwrap();
    }
    let out = ostid(&db).arg("index").arg(&cut).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "damaged files exit 2");
    let err = String::from_utf8_lossy(&out.stderr);
    for name in ["02. Night Market.ogg", "03_Last Stand.opus"] {
        assert!(
            err.contains(&format!("{name}: truncated at 0:0")),
            "{name} not reported: {err}"
        );
    }
    assert!(err.contains("damaged 2"), "{err}");
    // The whole files are not flagged.
    let whole = tmp.path().join("whole");
    std::fs::create_dir(&whole).unwrap();
    for name in ["02. Night Market.ogg", "03_Last Stand.opus"] {
        std::fs::copy(walk_fixture(name), whole.join(name)).unwrap();
    }
    ostid(&tmp.path().join("index2"))
        .arg("index")
        .arg(&whole)
        .assert()
        .code(0)
        .stderr(predicate::str::contains("damaged 0"));
}

/// A fixture library file by name, wherever it lies under the library.
fn walk_fixture(name: &str) -> PathBuf {
    fn find(dir: &Path, name: &str) -> Option<PathBuf> {
        for e in std::fs::read_dir(dir).ok()? {
            let p = e.ok()?.path();
            if p.is_dir() {
                if let Some(f) = find(&p, name) {
                    return Some(f);
                }
            } else if p.file_name().is_some_and(|n| n == name) {
                return Some(p);
            }
        }
        None
    }
    find(&fixtures().join("library"), name).expect("fixture file")
}

/// `compact` writes the catalogue afresh and swaps it in by renames; a
/// kill at either point of the swap leaves an index that opens, verifies
/// and answers as before, and nothing of the rewrite behind once opened.
#[test]
fn a_crash_in_the_catalogue_rewrite_loses_nothing() {
    let (_tmp, clean_db) = indexed();
    let want = answers(&clean_db);
    for (step, rebuild) in [
        ("catalogue-written", false),
        ("catalogue-swapped", false),
        ("catalogue-written", true),
        ("catalogue-swapped", true),
    ] {
        let tmp = TempDir::new().unwrap();
        let db = tmp.path().join("index");
        ostid(&db)
            .arg("index")
            .arg(fixtures().join("library"))
            .assert()
            .code(0);
        let out = ostid(&db)
            .arg("compact")
            .env("OSTID_FAILPOINT_ABORT_IN_MERGE", step)
            .output()
            .unwrap();
        assert_aborted_at_failpoint(&out, step);
        // What the crash left: the copy beside the catalogue, or the copy
        // alone with the old catalogue moved aside.
        assert!(db.join("sled.new").exists(), "{step}");
        assert_eq!(db.join("sled").exists(), step == "catalogue-written");
        assert_eq!(db.join("sled.old").exists(), step == "catalogue-swapped");
        if rebuild {
            // A rebuild starts from nothing, not from the copy.
            ostid(&db)
                .args(["index", "--rebuild"])
                .arg(fixtures().join("library"))
                .assert()
                .code(0)
                .stderr(predicate::str::contains("indexed 7, unchanged 0"));
        }
        postings_files_and_segments(&db);
        assert_eq!(answers(&db), want, "{step}");
        for stale in ["sled.new", "sled.old"] {
            assert!(!db.join(stale).exists(), "{step}: {stale} left behind");
        }
        assert!(!db.join("sled").join("ostid-complete").exists(), "{step}");
        // A compact run to its end answers the same.
        ostid(&db).arg("compact").assert().code(0);
        assert!(!db.join("sled.new").exists() && !db.join("sled.old").exists());
        assert_eq!(answers(&db), want, "{step}: compacted");
    }
}
