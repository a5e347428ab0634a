//! A music library on disk: which files to index, and what each track is
//! called (tags first, then file and folder names).
//!
//! Owns: walking folders (symlinks followed once, loops and unreadable
//! folders reported), the extension list, and the metadata rules. Does not
//! own: decoding or storing.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::decode::Tags;

/// File extensions that are indexed (lower case).
pub const EXTENSIONS: &[&str] = &[
    "wav", "wave", "aif", "aiff", "aifc", "flac", "mp3", "mp2", "mp1", "ogg", "oga", "opus", "m4a",
    "m4b", "mp4", "aac", "caf", "mka", "mkv", "webm",
];

/// A file selected for indexing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundFile {
    /// Absolute path with symlinks resolved.
    pub path: PathBuf,
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
}

/// The result of walking the roots.
#[derive(Debug, Default)]
pub struct Walk {
    pub files: Vec<FoundFile>,
    /// Paths that could not be read, with the reason.
    pub errors: Vec<(PathBuf, String)>,
}

/// Is this path one we index, by its extension?
pub fn is_audio_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

/// Modification time of file metadata in nanoseconds.
pub fn mtime_ns(meta: &fs::Metadata) -> i128 {
    match meta.modified() {
        Ok(t) => match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128,
            Err(e) => -(e.duration().as_nanos() as i128),
        },
        Err(_) => 0,
    }
}

/// Walk files and folders; every audio file reached is listed once, by its
/// resolved path, in a stable (sorted) order.
pub fn walk(roots: &[PathBuf]) -> Walk {
    let mut walk = Walk::default();
    let mut seen_files: HashSet<PathBuf> = HashSet::new();
    let mut seen_dirs: HashSet<PathBuf> = HashSet::new();
    for root in roots {
        let canon = match fs::canonicalize(root) {
            Ok(c) => c,
            Err(e) => {
                walk.errors.push((root.clone(), e.to_string()));
                continue;
            }
        };
        if canon.is_dir() {
            visit_dir(&canon, &mut walk, &mut seen_files, &mut seen_dirs);
        } else {
            // A file named explicitly is indexed whatever its extension.
            add_file(&canon, &mut walk, &mut seen_files);
        }
    }
    walk.files.sort_by(|a, b| a.path.cmp(&b.path));
    walk
}

fn add_file(path: &Path, walk: &mut Walk, seen: &mut HashSet<PathBuf>) {
    if !seen.insert(path.to_path_buf()) {
        return;
    }
    match fs::metadata(path) {
        Ok(meta) if meta.is_file() => walk.files.push(FoundFile {
            path: path.to_path_buf(),
            size: meta.len(),
            mtime_ns: mtime_ns(&meta),
        }),
        Ok(_) => {}
        Err(e) => walk.errors.push((path.to_path_buf(), e.to_string())),
    }
}

fn visit_dir(
    dir: &Path,
    walk: &mut Walk,
    files: &mut HashSet<PathBuf>,
    dirs: &mut HashSet<PathBuf>,
) {
    if !dirs.insert(dir.to_path_buf()) {
        return; // already visited: a symlink loop or a second link to it
    }
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            walk.errors
                .push((dir.to_path_buf(), format!("cannot read folder: {e}")));
            return;
        }
    };
    let mut children: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    children.sort();
    for child in children {
        let name_hidden = child
            .file_name()
            .map(|n| n.as_encoded_bytes().starts_with(b"."))
            .unwrap_or(false);
        if name_hidden {
            continue;
        }
        let canon = match fs::canonicalize(&child) {
            Ok(c) => c,
            Err(e) => {
                // A dangling link or a vanished file.
                if is_audio_path(&child) {
                    walk.errors.push((child.clone(), e.to_string()));
                }
                continue;
            }
        };
        if canon.is_dir() {
            visit_dir(&canon, walk, files, dirs);
        } else if is_audio_path(&child) || is_audio_path(&canon) {
            add_file(&canon, walk, files);
        }
    }
}

/// The bytes a path is stored under.
pub fn path_key(path: &Path) -> Vec<u8> {
    path.as_os_str().as_encoded_bytes().to_vec()
}

/// FNV-1a over the first MiB of a file: with its size, a moved file's
/// fingerprint of identity (read in ~1 ms, where decoding takes seconds).
pub fn head_hash(path: &Path) -> std::io::Result<u64> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(1 << 20);
    fs::File::open(path)?.take(1 << 20).read_to_end(&mut buf)?;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in &buf {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    Ok(h)
}

/// What a track is called.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrackInfo {
    pub title: String,
    pub work: String,
    pub composer: Option<String>,
    pub track_number: Option<u32>,
}

/// Apply the metadata rules: each field from tags first, then from names.
pub fn track_info(path: &Path, tags: &Tags) -> TrackInfo {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (stem_number, stem_title) = split_track_prefix(&stem);
    let title = tags.title.clone().unwrap_or_else(|| stem_title.to_string());
    let work = tags
        .album
        .clone()
        .unwrap_or_else(|| work_from_folders(path));
    let composer = tags
        .composer
        .clone()
        .or_else(|| tags.artist.clone())
        .or_else(|| tags.album_artist.clone());
    let track_number = tags
        .track_number
        .as_deref()
        .and_then(parse_track_number)
        .or(stem_number);
    TrackInfo {
        title,
        work,
        composer,
        track_number,
    }
}

/// What a track moved from `old` to `new` is called: each field that
/// `old`'s names gave (the title from the file name, the work from the
/// folders, the number from the name's prefix) is taken from `new`'s names;
/// a field that differs from them came from tags and stays.
pub fn renamed(old: &Path, new: &Path, current: TrackInfo) -> TrackInfo {
    let none = Tags::default();
    let (was, now) = (track_info(old, &none), track_info(new, &none));
    TrackInfo {
        title: if current.title == was.title {
            now.title
        } else {
            current.title
        },
        work: if current.work == was.work {
            now.work
        } else {
            current.work
        },
        composer: current.composer,
        track_number: if current.track_number == was.track_number {
            now.track_number
        } else {
            current.track_number
        },
    }
}

/// `"3/12"` or `"03"` -> 3.
pub fn parse_track_number(s: &str) -> Option<u32> {
    s.split('/').next()?.trim().parse().ok()
}

/// Strip a leading track number: `03 - Title`, `03. Title`, `03_Title`,
/// `1-03 Title`, `03 Title`. A name that is only a number stays as it is.
pub fn split_track_prefix(stem: &str) -> (Option<u32>, &str) {
    let bytes = stem.as_bytes();
    let digits = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let n1 = digits(0);
    if n1 == 0 || n1 > 3 {
        return (None, stem);
    }
    let mut end = n1;
    let mut number = &stem[..n1];
    // Disc-track form: 1-03
    if bytes.get(end) == Some(&b'-') {
        let n2 = digits(end + 1);
        if (1..=3).contains(&n2) && matches!(bytes.get(end + 1 + n2), Some(b' ' | b'.' | b'_')) {
            number = &stem[end + 1..end + 1 + n2];
            end += 1 + n2;
        }
    }
    let rest = &stem[end..];
    let trimmed = rest.trim_start_matches([' ', '.', '_', '-']);
    let had_separator = trimmed.len() < rest.len();
    if !had_separator || trimmed.is_empty() {
        return (None, stem);
    }
    (number.parse().ok(), trimmed)
}

/// Is this folder name a disc folder (`CD1`, `Disc 2`, `Disk 1`)?
pub fn is_disc_folder(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let rest = ["disc", "disk", "cd"]
        .iter()
        .find_map(|p| lower.strip_prefix(p))
        .map(|r| r.trim_start_matches([' ', '_', '-', '.']));
    matches!(rest, Some(r) if !r.is_empty() && r.chars().all(|c| c.is_ascii_digit()))
}

/// The work from folder names: the parent folder, skipping disc folders.
pub fn work_from_folders(path: &Path) -> String {
    let mut dir = path.parent();
    while let Some(d) = dir {
        if let Some(name) = d.file_name() {
            let name = name.to_string_lossy();
            if !is_disc_folder(&name) {
                return name.into_owned();
            }
        }
        dir = d.parent();
    }
    "Unknown work".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn track_prefixes() {
        assert_eq!(
            split_track_prefix("03 - Main Theme"),
            (Some(3), "Main Theme")
        );
        assert_eq!(
            split_track_prefix("03. Main Theme"),
            (Some(3), "Main Theme")
        );
        assert_eq!(split_track_prefix("03_Main_Theme"), (Some(3), "Main_Theme"));
        assert_eq!(
            split_track_prefix("1-03 Main Theme"),
            (Some(3), "Main Theme")
        );
        assert_eq!(split_track_prefix("12 Days"), (Some(12), "Days"));
        assert_eq!(split_track_prefix("1999"), (None, "1999"));
        assert_eq!(split_track_prefix("track3"), (None, "track3"));
        assert_eq!(split_track_prefix("Main Theme"), (None, "Main Theme"));
    }

    #[test]
    fn disc_folders_are_skipped() {
        for d in ["CD1", "cd 2", "Disc 2", "disk_1", "DISC-3"] {
            assert!(is_disc_folder(d), "{d}");
        }
        for d in ["CDs", "Discovery", "Disc", "Music"] {
            assert!(!is_disc_folder(d), "{d}");
        }
        assert_eq!(
            work_from_folders(Path::new("/m/Hollow Crown/Disc 2/01 - Coda.ogg")),
            "Hollow Crown"
        );
        assert_eq!(
            work_from_folders(Path::new("/m/Ember Road/01 - Opening.wav")),
            "Ember Road"
        );
    }

    #[test]
    fn tags_win_over_names() {
        let tags = Tags {
            title: Some("Real Title".into()),
            album: Some("Real Album".into()),
            artist: Some("Someone".into()),
            track_number: Some("4/12".into()),
            ..Default::default()
        };
        let info = track_info(Path::new("/m/Folder/07 - Name.flac"), &tags);
        assert_eq!(info.title, "Real Title");
        assert_eq!(info.work, "Real Album");
        assert_eq!(info.composer.as_deref(), Some("Someone"));
        assert_eq!(info.track_number, Some(4));
        let info = track_info(Path::new("/m/Folder/CD1/07 - Name.flac"), &Tags::default());
        assert_eq!(
            (info.title.as_str(), info.work.as_str(), info.track_number),
            ("Name", "Folder", Some(7))
        );
    }

    #[test]
    fn names_taken_from_the_path_follow_a_rename_and_tags_stay() {
        let old = Path::new("/m/Ember Road/01 - Opening.wav");
        let new = Path::new("/m/Ember Road (2024)/04 - Opening (remaster).wav");
        let from_names = track_info(old, &Tags::default());
        let after = renamed(old, new, from_names);
        assert_eq!(after.title, "Opening (remaster)");
        assert_eq!(after.work, "Ember Road (2024)");
        assert_eq!(after.track_number, Some(4));
        let tagged = TrackInfo {
            title: "Storm Front".into(),
            work: "Skyward Saga".into(),
            composer: Some("Ada".into()),
            track_number: Some(2),
        };
        assert_eq!(renamed(old, new, tagged.clone()), tagged);
    }
}
