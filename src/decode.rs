//! Audio in, mono `f32` chunks at the fingerprint rate out.
//!
//! Owns: opening a path or stdin with symphonia, choosing the audio track of a
//! container, decoding packet by packet (Opus through a pure-Rust libopus
//! port), downmixing, resampling (rubato) and reporting tags, truncation and
//! damage. Does not own: what the samples are used for; chunks are handed to a
//! callback as they are produced, so a ten-hour file or an endless pipe costs
//! the same memory as a clip. No buffer is ever sized from a header value.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use rubato::{FftFixedIn, Resampler};
use symphonia::core::audio::{AudioBufferRef, SampleBuffer};
use symphonia::core::codecs::{
    CodecParameters, Decoder, DecoderOptions, CODEC_TYPE_NULL, CODEC_TYPE_OPUS,
};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSource, MediaSourceStream, ReadOnlySource};
use symphonia::core::meta::{MetadataOptions, MetadataRevision, StandardTagKey};
use symphonia::core::probe::Hint;

/// Where audio comes from: a file, or standard input (`-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Path(PathBuf),
    Stdin,
}

impl Source {
    /// `-` means standard input, anything else a path.
    pub fn from_arg(arg: &str) -> Source {
        if arg == "-" {
            Source::Stdin
        } else {
            Source::Path(PathBuf::from(arg))
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Path(p) => write!(f, "{}", p.display()),
            Source::Stdin => f.write_str("<stdin>"),
        }
    }
}

/// Tags found in the file (before and inside the container), merged: the
/// first non-empty value of each field wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags {
    pub title: Option<String>,
    pub album: Option<String>,
    pub artist: Option<String>,
    pub album_artist: Option<String>,
    pub composer: Option<String>,
    pub track_number: Option<String>,
}

impl Tags {
    fn merge_revision(&mut self, rev: &MetadataRevision) {
        for tag in rev.tags() {
            let value = tag.value.to_string();
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            let key = tag.key.to_ascii_uppercase();
            let slot = match tag.std_key {
                Some(StandardTagKey::TrackTitle) => &mut self.title,
                Some(StandardTagKey::Album) => &mut self.album,
                Some(StandardTagKey::Artist) => &mut self.artist,
                Some(StandardTagKey::AlbumArtist) => &mut self.album_artist,
                Some(StandardTagKey::Composer) => &mut self.composer,
                Some(StandardTagKey::TrackNumber) => &mut self.track_number,
                _ => match key.as_str() {
                    "TITLE" => &mut self.title,
                    "ALBUM" => &mut self.album,
                    "ARTIST" => &mut self.artist,
                    "COMPOSER" => &mut self.composer,
                    "TRACKNUMBER" | "TRACK" => &mut self.track_number,
                    _ => continue,
                },
            };
            if slot.is_none() {
                *slot = Some(value.to_string());
            }
        }
    }
}

/// What decoding a source produced, besides the samples.
#[derive(Debug, Clone, Default)]
pub struct DecodeReport {
    /// Seconds of audio delivered (at the source rate, before resampling).
    pub duration_s: f64,
    /// Sample rate of the source, Hz.
    pub source_rate_hz: u32,
    /// Channels of the source.
    pub channels: usize,
    /// Set when a file ended early (I/O error or fewer frames than its header
    /// announced): the position, in seconds, up to which audio decoded.
    pub truncated_at_s: Option<f64>,
    /// Packets the codec rejected and that were skipped.
    pub damaged_packets: u64,
    pub tags: Tags,
}

/// Why a source could not be decoded.
#[derive(Debug)]
pub enum DecodeError {
    /// The file could not be opened or read at all.
    Io(io::Error),
    /// A folder where an audio file was expected.
    Folder,
    /// Not an audio format symphonia recognises.
    Unrecognised(String),
    /// A container without an audio track we can decode (AC-3, DTS...).
    UnsupportedCodec(String),
    /// Less than the minimum of audio decoded.
    TooShort { decoded_s: f64, reason: String },
    /// Anything else that stopped decoding before any audio came out.
    Corrupt(String),
    /// The callback asked to stop (Ctrl-C).
    Interrupted,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Io(e) => write!(f, "cannot read: {e}"),
            DecodeError::Folder => f.write_str(
                "is a folder, not an audio file; give its clips (`ostid match DIR/*.wav`, \
                 or a list with `--from-file`), or index it (`ostid index DIR`); \
                 `ostid scan` takes one recording",
            ),
            DecodeError::Unrecognised(why) => {
                write!(f, "not a recognised audio file ({why})")
            }
            DecodeError::UnsupportedCodec(codec) => write!(
                f,
                "no audio track ostid can decode ({codec}); pipe it through ffmpeg: \
                 `ffmpeg -i FILE -f wav - | ostid match -` (or `ostid scan -`), \
                 or convert it for the library: `ffmpeg -i FILE -vn FILE.flac`"
            ),
            DecodeError::TooShort { decoded_s, reason } => write!(
                f,
                "only {decoded_s:.1} s of audio decoded ({reason}); the file is damaged or empty"
            ),
            DecodeError::Corrupt(why) => write!(f, "cannot decode: {why}"),
            DecodeError::Interrupted => f.write_str("interrupted"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A file that yields less than this much audio has failed.
pub const MIN_DECODED_S: f64 = 1.0;

/// What the sink tells the decoder after each chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// Decode `source` and hand mono chunks at `target_rate_hz` to `sink`.
///
/// `min_duration_s` is the least audio that counts as success (files: 1 s; a
/// query may be shorter).
pub fn decode<F>(
    source: &Source,
    target_rate_hz: u32,
    min_duration_s: f64,
    mut sink: F,
) -> Result<DecodeReport, DecodeError>
where
    F: FnMut(&[f32]) -> Flow,
{
    let (media, hint, is_stdin): (Box<dyn MediaSource>, Hint, bool) = match source {
        Source::Stdin => (
            Box::new(ReadOnlySource::new(io::stdin())),
            Hint::new(),
            true,
        ),
        Source::Path(path) => {
            let file = File::open(path).map_err(DecodeError::Io)?;
            let meta = file.metadata().ok();
            if meta.as_ref().is_some_and(|m| m.is_dir()) {
                return Err(DecodeError::Folder);
            }
            if meta.is_some_and(|m| m.len() == 0) {
                return Err(DecodeError::Unrecognised("empty file, 0 bytes".into()));
            }
            let mut hint = Hint::new();
            if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
                hint.with_extension(&ext.to_ascii_lowercase());
            }
            (Box::new(file), hint, false)
        }
    };
    let mut report = guarded(|| {
        decode_media(
            media,
            hint,
            is_stdin,
            target_rate_hz,
            min_duration_s,
            &mut sink,
        )
    })?;
    if let Source::Path(path) = source {
        if report.truncated_at_s.is_none() && ogg_cut_short(path) {
            report.truncated_at_s = Some(report.duration_s);
        }
    }
    Ok(report)
}

/// The largest Ogg page: a 27-byte header, 255 lacing values, 255 x 255
/// bytes of data.
const OGG_MAX_PAGE: u64 = 27 + 255 + 255 * 255;

/// Whether `path` is an Ogg file (Vorbis, Opus...) whose last page does not
/// end its stream. Every logical stream ends with a page flagged
/// end-of-stream; a file cut short (an interrupted download or copy) ends
/// mid-stream, and its decoders just stop, so nothing else would notice.
fn ogg_cut_short(path: &std::path::Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    let mut magic = [0u8; 4];
    if f.read_exact(&mut magic).is_err() || &magic != b"OggS" {
        return false;
    }
    let Ok(len) = f.seek(SeekFrom::End(0)) else {
        return false;
    };
    let from = len.saturating_sub(OGG_MAX_PAGE);
    let mut tail = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_err() || f.read_to_end(&mut tail).is_err() {
        return false;
    }
    ogg_tail_ends_a_stream(&tail).is_some_and(|ends| !ends)
}

/// Whether the last Ogg page in `tail` (the end of a file) is whole and
/// flagged end-of-stream; `None` when `tail` holds no page header.
fn ogg_tail_ends_a_stream(tail: &[u8]) -> Option<bool> {
    // A page: "OggS", version 0, the header type (bit 0x04: the last page
    // of a logical stream), granule, serial, sequence and CRC (22 bytes in
    // all), the segment count, the segments' sizes, then their bytes.
    let last = tail
        .windows(6)
        .rposition(|w| &w[..4] == b"OggS" && w[4] == 0)?;
    let page = &tail[last..];
    let Some(&segments) = page.get(26) else {
        return Some(false);
    };
    let Some(sizes) = page.get(27..27 + segments as usize) else {
        return Some(false);
    };
    let whole = 27 + segments as usize + sizes.iter().map(|&b| b as usize).sum::<usize>();
    Some(page.len() >= whole && page[5] & 0x04 != 0)
}

thread_local! {
    static IN_DECODER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run a decoder on untrusted input: a panic inside it (a demuxer's
/// arithmetic on a hostile header) becomes this file's error instead of the
/// end of the process. See [`quiet_decoder_panics`].
fn guarded(
    f: impl FnOnce() -> Result<DecodeReport, DecodeError>,
) -> Result<DecodeReport, DecodeError> {
    let was = IN_DECODER.with(|d| d.replace(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    IN_DECODER.with(|d| d.set(was));
    r.unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown failure".into());
        Err(DecodeError::Corrupt(format!(
            "the decoder failed on this data ({msg})"
        )))
    })
}

/// Whether the current thread is inside [`decode`] (for panic hooks).
pub fn in_decoder() -> bool {
    IN_DECODER.with(|d| d.get())
}

/// Install a panic hook that stays quiet for panics inside a decoder (they
/// are reported as that file's error) and reports any other panic as usual.
pub fn quiet_decoder_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !in_decoder() {
            default(info);
        }
    }));
}

/// Decode from any reader (used by tests and fuzzing): treated like a pipe.
pub fn decode_reader<R, F>(
    reader: R,
    target_rate_hz: u32,
    mut sink: F,
) -> Result<DecodeReport, DecodeError>
where
    R: Read + Send + Sync + 'static,
    F: FnMut(&[f32]) -> Flow,
{
    guarded(|| {
        decode_media(
            Box::new(ReadOnlySource::new(reader)),
            Hint::new(),
            true,
            target_rate_hz,
            0.0,
            &mut sink,
        )
    })
}

fn decode_media(
    media: Box<dyn MediaSource>,
    hint: Hint,
    is_stream: bool,
    target_rate_hz: u32,
    min_duration_s: f64,
    sink: &mut dyn FnMut(&[f32]) -> Flow,
) -> Result<DecodeReport, DecodeError> {
    let mss = MediaSourceStream::new(media, Default::default());
    let format_opts = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    let mut probed = symphonia::default::get_probe()
        .format(&hint, mss, &format_opts, &MetadataOptions::default())
        .map_err(|e| match e {
            SymError::IoError(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
                DecodeError::Unrecognised("empty or too short to be audio".into())
            }
            SymError::IoError(io) => DecodeError::Io(io),
            SymError::Unsupported(_) => DecodeError::Unrecognised(
                "no audio format signature found; damaged, or not audio".into(),
            ),
            other => DecodeError::Unrecognised(other.to_string()),
        })?;

    let mut tags = Tags::default();
    if let Some(rev) = probed.metadata.get().as_ref().and_then(|m| m.current()) {
        tags.merge_revision(rev);
    }
    let mut format = probed.format;
    if let Some(rev) = format.metadata().current() {
        tags.merge_revision(rev);
    }

    let (track_id, params) = pick_audio_track(format.as_ref())?;
    let mut decoder = make_decoder(&params, target_rate_hz)?;
    let mut report = DecodeReport {
        tags,
        ..Default::default()
    };

    let mut mono: Vec<f32> = Vec::new();
    let mut conv: Option<Resample> = None;
    let mut frames_in: u64 = 0;
    let mut end_error: Option<String> = None;
    let mut interrupted = false;

    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(SymError::ResetRequired) => break,
            Err(e) => {
                end_error = Some(e.to_string());
                break;
            }
        };
        if packet.track_id() != track_id {
            continue;
        }
        let (rate, channels) = match decoder.decode(&packet, &mut mono) {
            Ok(Some(spec)) => spec,
            Ok(None) => continue,
            Err(SymError::DecodeError(_)) | Err(SymError::IoError(_)) => {
                report.damaged_packets += 1;
                continue;
            }
            Err(e) => {
                end_error = Some(e.to_string());
                break;
            }
        };
        if mono.is_empty() {
            continue;
        }
        if report.source_rate_hz == 0 {
            report.source_rate_hz = rate;
            report.channels = channels;
        }
        if rate != report.source_rate_hz {
            // A chained stream with another rate: treat what came before as the file.
            break;
        }
        frames_in += mono.len() as u64;
        let conv = match &mut conv {
            Some(c) => c,
            None => conv.insert(Resample::new(rate, target_rate_hz)?),
        };
        if conv.push(&mono, sink) == Flow::Stop {
            interrupted = true;
            break;
        }
    }
    if interrupted {
        return Err(DecodeError::Interrupted);
    }
    if let Some(c) = conv.as_mut() {
        c.finish(sink);
    }

    let rate = report.source_rate_hz.max(1) as f64;
    report.duration_s = frames_in as f64 / rate;
    if !is_stream {
        // n_frames counts frames at the codec's rate (48 kHz for Opus even
        // when libopus decodes at a lower rate).
        let codec_rate = params.sample_rate.unwrap_or(report.source_rate_hz).max(1) as f64;
        let announced = (params.n_frames.unwrap_or(0) as f64 * rate / codec_rate) as u64;
        // A file that ended with an error, or well short of what its header
        // announced (more than 0.5 s missing), is truncated.
        let short = announced > frames_in + (rate as u64) / 2;
        if end_error.is_some() || short {
            report.truncated_at_s = Some(report.duration_s);
        }
    }
    if report.duration_s < min_duration_s || frames_in == 0 {
        let reason = end_error
            .or_else(|| (report.damaged_packets > 0).then(|| "every packet was rejected".into()))
            .unwrap_or_else(|| "no audio in the stream".into());
        return Err(DecodeError::TooShort {
            decoded_s: report.duration_s,
            reason,
        });
    }
    Ok(report)
}

/// The first track that carries audio a decoder exists for. Video and
/// subtitle tracks have no sample rate; audio in a codec we lack is named.
fn pick_audio_track(format: &dyn FormatReader) -> Result<(u32, CodecParameters), DecodeError> {
    let registry = symphonia::default::get_codecs();
    let mut lacking: Option<String> = None;
    for track in format.tracks() {
        let p = &track.codec_params;
        if p.sample_rate.is_none() && p.codec != CODEC_TYPE_OPUS {
            continue;
        }
        if p.codec == CODEC_TYPE_OPUS || registry.get_codec(p.codec).is_some() {
            return Ok((track.id, p.clone()));
        }
        if lacking.is_none() {
            lacking = Some(if p.codec == CODEC_TYPE_NULL {
                "an audio codec symphonia does not read, such as AC-3, E-AC-3 or DTS".into()
            } else {
                format!("codec {}", p.codec)
            });
        }
    }
    Err(DecodeError::UnsupportedCodec(lacking.unwrap_or_else(
        || "the container has no audio track".into(),
    )))
}

/// One packet in, mono samples out: symphonia's decoders or Opus.
enum PacketDecoder {
    Symphonia {
        inner: Box<dyn Decoder>,
        buf: Option<SampleBuffer<f32>>,
    },
    Opus(OpusDecoder),
}

impl PacketDecoder {
    /// Decode one packet into `mono` (cleared first). Returns the sample rate
    /// and channel count of the decoded audio, or `None` for an empty packet.
    fn decode(
        &mut self,
        packet: &symphonia::core::formats::Packet,
        mono: &mut Vec<f32>,
    ) -> Result<Option<(u32, usize)>, SymError> {
        mono.clear();
        match self {
            PacketDecoder::Symphonia { inner, buf } => {
                let decoded = inner.decode(packet)?;
                let spec = *decoded.spec();
                let frames = decoded.frames();
                if frames == 0 {
                    return Ok(None);
                }
                let channels = spec.channels.count().max(1);
                if let AudioBufferRef::F32(planar) = &decoded {
                    downmix_planes(planar.planes().planes(), mono);
                    return Ok(Some((spec.rate, channels)));
                }
                let needs_new = buf
                    .as_ref()
                    .is_none_or(|b| b.capacity() < decoded.capacity() * channels);
                if needs_new {
                    *buf = Some(SampleBuffer::new(decoded.capacity() as u64, spec));
                }
                let sb = buf.as_mut().expect("sample buffer was just ensured");
                sb.copy_interleaved_ref(decoded);
                downmix(sb.samples(), channels, mono);
                Ok(Some((spec.rate, channels)))
            }
            PacketDecoder::Opus(op) => op.decode(&packet.data, mono).map(Some),
        }
    }
}

/// Average planar channels into one.
fn downmix_planes(planes: &[&[f32]], out: &mut Vec<f32>) {
    match planes {
        [] => {}
        [mono] => out.extend_from_slice(mono),
        [l, r] => out.extend(l.iter().zip(r.iter()).map(|(a, b)| 0.5 * (a + b))),
        _ => {
            let scale = 1.0 / planes.len() as f32;
            out.extend(
                (0..planes[0].len()).map(|i| planes.iter().map(|p| p[i]).sum::<f32>() * scale),
            );
        }
    }
}

/// Average interleaved channels into one.
pub fn downmix(interleaved: &[f32], channels: usize, out: &mut Vec<f32>) {
    if channels <= 1 {
        out.extend_from_slice(interleaved);
        return;
    }
    let scale = 1.0 / channels as f32;
    out.extend(
        interleaved
            .chunks_exact(channels)
            .map(|frame| frame.iter().sum::<f32>() * scale),
    );
}

fn make_decoder(
    params: &CodecParameters,
    target_rate_hz: u32,
) -> Result<PacketDecoder, DecodeError> {
    if params.codec == CODEC_TYPE_OPUS {
        return OpusDecoder::new(params, target_rate_hz).map(PacketDecoder::Opus);
    }
    let inner = symphonia::default::get_codecs()
        .make(params, &DecoderOptions::default())
        .map_err(|e| DecodeError::UnsupportedCodec(e.to_string()))?;
    Ok(PacketDecoder::Symphonia { inner, buf: None })
}

/// Opus through `unsafe-libopus` (a pure-Rust translation of libopus: no
/// cmake, no C toolchain). Mono or stereo streams (channel mapping family 0).
/// libopus decodes straight to 8, 12, 16, 24 or 48 kHz; at the fingerprint
/// rate no resampling is needed (measured ~10 % faster than 48 kHz + rubato).
struct OpusDecoder {
    state: *mut unsafe_libopus::OpusDecoder,
    rate_hz: u32,
    channels: usize,
    /// Samples (per channel) still to drop at the start (the pre-skip).
    skip: usize,
    pcm: Vec<f32>,
}

// SAFETY: the decoder state is owned exclusively by this struct and only used
// through `&mut self`; libopus decoder state has no thread affinity.
unsafe impl Send for OpusDecoder {}

/// The longest Opus packet: 120 ms at 48 kHz.
const OPUS_MAX_FRAME: usize = 5760;

impl OpusDecoder {
    fn new(params: &CodecParameters, target_rate_hz: u32) -> Result<OpusDecoder, DecodeError> {
        let rate_hz = if [8_000, 12_000, 16_000, 24_000].contains(&target_rate_hz) {
            target_rate_hz
        } else {
            48_000
        };
        let head = params.extra_data.as_deref().unwrap_or(&[]);
        let channels = match head.get(9) {
            Some(&c) => c as usize,
            None => params.channels.map(|c| c.count()).unwrap_or(2),
        };
        if !(1..=2).contains(&channels) {
            return Err(DecodeError::UnsupportedCodec(format!(
                "Opus with {channels} channels"
            )));
        }
        // The pre-skip is counted at 48 kHz.
        let skip = params.delay.unwrap_or(0) as usize * rate_hz as usize / 48_000;
        let mut err = 0i32;
        // SAFETY: plain constructor call; the returned pointer is checked.
        let state = unsafe { unsafe_libopus::opus_decoder_create(rate_hz as i32, 1, &mut err) };
        if state.is_null() || err != 0 {
            return Err(DecodeError::Corrupt(format!(
                "cannot start the Opus decoder (error {err})"
            )));
        }
        Ok(OpusDecoder {
            state,
            rate_hz,
            channels,
            skip,
            pcm: vec![0.0; OPUS_MAX_FRAME],
        })
    }

    fn decode(&mut self, data: &[u8], mono: &mut Vec<f32>) -> Result<(u32, usize), SymError> {
        if data.is_empty() {
            return Ok((self.rate_hz, self.channels));
        }
        // SAFETY: `pcm` holds OPUS_MAX_FRAME frames of `channels` samples,
        // which is what frame_size promises libopus it may write.
        let n = unsafe {
            unsafe_libopus::opus_decode_float(
                self.state,
                data.as_ptr(),
                data.len() as i32,
                self.pcm.as_mut_ptr(),
                OPUS_MAX_FRAME as i32,
                0,
            )
        };
        if n < 0 {
            return Err(SymError::DecodeError("invalid Opus packet"));
        }
        let n = n as usize;
        let drop = self.skip.min(n);
        self.skip -= drop;
        mono.extend_from_slice(&self.pcm[drop..n]);
        Ok((self.rate_hz, self.channels))
    }
}

impl Drop for OpusDecoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_decoder_create, destroyed exactly once.
        unsafe { unsafe_libopus::opus_decoder_destroy(self.state) }
    }
}

/// Streaming resampler to the fingerprint rate; passes audio through when the
/// rates already agree. The resampler's delay is trimmed so that sample 0 out
/// is sample 0 in: offsets stay exact.
struct Resample {
    inner: Option<FftFixedIn<f32>>,
    pending: Vec<f32>,
    out: Vec<Vec<f32>>,
    /// Output samples still to drop (the resampler's delay).
    delay: usize,
    /// Output samples expected in total, to cut the zero padding at the end.
    expected_out: u64,
    produced_out: u64,
    ratio: f64,
    consumed_in: u64,
}

/// About this many input frames per resampler call. The exact size is the
/// smallest whole ratio step times a power of two, so that the FFT lengths
/// have only small prime factors (a size like 6 x 683 would be very slow).
const RESAMPLE_CHUNK: usize = 4096;

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn resample_chunk(from_hz: usize, to_hz: usize) -> usize {
    let step = from_hz / gcd(from_hz, to_hz);
    let mut chunk = step;
    while chunk * 2 <= RESAMPLE_CHUNK.max(step) {
        chunk *= 2;
    }
    chunk
}

/// Sample rates audio is really stored at: a header claiming more (or less)
/// is damaged, and resampling from it would size buffers from that claim.
const SANE_RATES_HZ: std::ops::RangeInclusive<u32> = 1_000..=768_000;

impl Resample {
    fn new(from_hz: u32, to_hz: u32) -> Result<Resample, DecodeError> {
        if !SANE_RATES_HZ.contains(&from_hz) {
            return Err(DecodeError::Corrupt(format!(
                "the stream claims a sample rate of {from_hz} Hz (damaged header)"
            )));
        }
        let inner = if from_hz == to_hz {
            None
        } else {
            let r = FftFixedIn::<f32>::new(
                from_hz as usize,
                to_hz as usize,
                resample_chunk(from_hz as usize, to_hz as usize),
                1,
                1,
            )
            .map_err(|e| DecodeError::Corrupt(format!("sample rate {from_hz} Hz: {e}")))?;
            Some(r)
        };
        let delay = inner.as_ref().map_or(0, |r| r.output_delay());
        let out = inner
            .as_ref()
            .map_or_else(Vec::new, |r| vec![vec![0.0; r.output_frames_max()]]);
        Ok(Resample {
            inner,
            pending: Vec::new(),
            out,
            delay,
            expected_out: 0,
            produced_out: 0,
            ratio: to_hz as f64 / from_hz as f64,
            consumed_in: 0,
        })
    }

    fn emit(&mut self, n: usize, sink: &mut dyn FnMut(&[f32]) -> Flow) -> Flow {
        let drop = self.delay.min(n);
        self.delay -= drop;
        let mut slice = &self.out[0][drop..n];
        let room = self.expected_out.saturating_sub(self.produced_out);
        if (slice.len() as u64) > room {
            slice = &slice[..room as usize];
        }
        self.produced_out += slice.len() as u64;
        if slice.is_empty() {
            Flow::Continue
        } else {
            sink(slice)
        }
    }

    fn push(&mut self, samples: &[f32], sink: &mut dyn FnMut(&[f32]) -> Flow) -> Flow {
        let Some(mut r) = self.inner.take() else {
            return sink(samples);
        };
        self.consumed_in += samples.len() as u64;
        self.expected_out = (self.consumed_in as f64 * self.ratio).round() as u64;
        self.pending.extend_from_slice(samples);
        let mut start = 0;
        let mut flow = Flow::Continue;
        loop {
            let need = r.input_frames_next();
            if self.pending.len() - start < need {
                break;
            }
            let (_, n) = r
                .process_into_buffer(&[&self.pending[start..start + need]], &mut self.out, None)
                .expect("buffers are sized from the resampler's own limits");
            start += need;
            if self.emit(n, sink) == Flow::Stop {
                flow = Flow::Stop;
                break;
            }
        }
        self.pending.drain(..start);
        self.inner = Some(r);
        flow
    }

    fn finish(&mut self, sink: &mut dyn FnMut(&[f32]) -> Flow) {
        let Some(mut r) = self.inner.take() else {
            return;
        };
        // Feed the tail, then silence until every expected sample is out.
        let tail = std::mem::take(&mut self.pending);
        let mut input: Option<&[&[f32]]> = if tail.is_empty() {
            None
        } else {
            Some(&[&tail[..]])
        };
        while self.produced_out < self.expected_out {
            let (_, n) = r
                .process_partial_into_buffer(input.take(), &mut self.out, None)
                .expect("buffers are sized from the resampler's own limits");
            if n == 0 || self.emit(n, sink) == Flow::Stop {
                break;
            }
        }
        self.inner = Some(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ogg_tail_ends_its_stream_only_with_the_end_of_stream_flag() {
        // A page of two segments, 255 and 40 bytes.
        let page = |flags: u8| {
            let mut p = b"OggS".to_vec();
            p.extend([0, flags]);
            p.extend([7u8; 20]);
            p.extend([2, 255, 40]);
            p.extend([9u8; 295]);
            p
        };
        let mut file = page(0x02);
        file.extend(page(0x00));
        file.extend(page(0x04));
        assert_eq!(ogg_tail_ends_a_stream(&file), Some(true));
        // Cut inside the last page, at any point: its flag is not enough.
        for keep in [1, 6, 26, 27, 29, 100, 323] {
            let cut = &file[..file.len() - page(0).len() + keep];
            assert_eq!(ogg_tail_ends_a_stream(cut), Some(false), "{keep}");
        }
        // Cut at a page boundary before the last page.
        assert_eq!(
            ogg_tail_ends_a_stream(&file[..2 * page(0).len()]),
            Some(false)
        );
        assert_eq!(ogg_tail_ends_a_stream(b"no pages here"), None);
        // A continued page flagged end-of-stream (0x05) ends it too.
        assert_eq!(ogg_tail_ends_a_stream(&page(0x05)), Some(true));
    }

    fn resample_all(input: &[f32], from: u32, to: u32, piece: usize) -> Vec<f32> {
        let mut r = Resample::new(from, to).unwrap();
        let mut out = Vec::new();
        let mut sink = |s: &[f32]| {
            out.extend_from_slice(s);
            Flow::Continue
        };
        for chunk in input.chunks(piece) {
            r.push(chunk, &mut sink);
        }
        r.finish(&mut sink);
        out
    }

    #[test]
    fn resampler_keeps_length_and_timing_of_a_sine() {
        let from = 44_100;
        let to = 8_000;
        let f = 440.0f32;
        let n = from as usize * 3;
        let input: Vec<f32> = (0..n)
            .map(|i| (2.0 * std::f32::consts::PI * f * i as f32 / from as f32).sin())
            .collect();
        let out = resample_all(&input, from, to, 1000);
        let expected = (n as f64 * to as f64 / from as f64).round() as usize;
        assert_eq!(out.len(), expected);
        // Away from the edges the output is the same sine at the new rate:
        // no delay, same amplitude.
        for (i, &s) in out.iter().enumerate().skip(400).take(16_000) {
            let want = (2.0 * std::f32::consts::PI * f * i as f32 / to as f32).sin();
            assert!((s - want).abs() < 0.02, "sample {i}: {s} vs {want}");
        }
    }

    #[test]
    fn resampler_output_does_not_depend_on_chunking() {
        let input: Vec<f32> = (0..50_000)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
            .collect();
        let a = resample_all(&input, 48_000, 8_000, 333);
        let b = resample_all(&input, 48_000, 8_000, 20_000);
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5);
        }
    }

    #[test]
    fn downmix_averages_channels() {
        let mut out = Vec::new();
        downmix(&[1.0, 0.0, 0.5, 0.5, -1.0, 1.0], 2, &mut out);
        assert_eq!(out, vec![0.5, 0.5, 0.0]);
    }

    #[test]
    fn garbage_is_unrecognised_not_a_panic() {
        let bytes: Vec<u8> = b"this is plainly not audio, just text\n".repeat(100);
        let err = decode_reader(io::Cursor::new(bytes), 8000, |_| Flow::Continue).unwrap_err();
        assert!(matches!(err, DecodeError::Unrecognised(_)), "{err}");
    }
}
