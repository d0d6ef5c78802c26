//! Recognising the audio formats sauti accepts for voice recordings (WAV and MP3) by their
//! content, and reading a recording's duration where the file says it. As with images
//! (`image.rs`), the type a caller declares is never trusted: a PNG or a text file named
//! `greeting.wav` is still not audio, and what is served back carries the type of the
//! bytes actually stored.

/// An accepted audio format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioType {
    Wav,
    Mp3,
}

/// What [`AudioType::sniff`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Audio {
    pub kind: AudioType,
    /// How long the audio plays, when the file says: a WAV's data size over its byte
    /// rate, an MP3's frames counted.
    pub duration_ms: Option<i64>,
}

impl AudioType {
    const ALL: [AudioType; 2] = [AudioType::Wav, AudioType::Mp3];

    /// The format of `bytes`, with the duration where it can be read; `None` for anything
    /// else.
    pub fn sniff(bytes: &[u8]) -> Option<Audio> {
        if let Some(duration_ms) = wav(bytes) {
            return Some(Audio {
                kind: AudioType::Wav,
                duration_ms,
            });
        }
        mp3(bytes).map(|duration_ms| Audio {
            kind: AudioType::Mp3,
            duration_ms,
        })
    }

    pub fn mime(self) -> &'static str {
        match self {
            AudioType::Wav => "audio/wav",
            AudioType::Mp3 => "audio/mpeg",
        }
    }

    /// The file extension a stored recording gets.
    pub fn ext(self) -> &'static str {
        match self {
            AudioType::Wav => "wav",
            AudioType::Mp3 => "mp3",
        }
    }

    pub fn from_mime(mime: &str) -> Option<AudioType> {
        Self::ALL.into_iter().find(|t| t.mime() == mime)
    }
}

fn u16_le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_le(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A RIFF/WAVE file with a usable `fmt ` chunk: `Some(duration)`, the duration known when
/// a `data` chunk is there too. `None` when it is not such a file.
fn wav(b: &[u8]) -> Option<Option<i64>> {
    if b.len() < 12 || &b[0..4] != b"RIFF" || &b[8..12] != b"WAVE" {
        return None;
    }
    let mut byte_rate = None;
    let mut data_len = None;
    let mut pos = 12usize;
    // Chunks: a 4-byte id, a 4-byte little-endian size, the body, a pad byte to keep the
    // next chunk at an even offset. Sizes are not trusted past the end of the bytes (a
    // streamed WAV may say 0xFFFFFFFF).
    while b.len().saturating_sub(pos) >= 8 {
        let id = &b[pos..pos + 4];
        let size = u32_le(b, pos + 4) as usize;
        let body = pos + 8;
        let available = (b.len() - body).min(size);
        match id {
            b"fmt " if available >= 16 => {
                let channels = u16_le(b, body + 2);
                let sample_rate = u32_le(b, body + 4);
                if channels == 0 || sample_rate == 0 {
                    return None;
                }
                byte_rate = Some(u32_le(b, body + 8));
            }
            b"fmt " => return None,
            b"data" => data_len = Some(available as u64),
            _ => {}
        }
        pos = body.saturating_add(size).saturating_add(size & 1);
    }
    let byte_rate = byte_rate?;
    Some(match (data_len, byte_rate) {
        (Some(len), rate) if rate > 0 => Some((len * 1000 / u64::from(rate)) as i64),
        _ => None,
    })
}

/// One MPEG audio Layer III frame header.
struct Frame {
    len: usize,
    samples: u32,
    sample_rate: u32,
}

/// The Layer III frame whose header starts `b`, if it is one.
fn frame(b: &[u8]) -> Option<Frame> {
    if b.len() < 4 || b[0] != 0xFF || b[1] & 0xE0 != 0xE0 {
        return None;
    }
    // 11 sync bits, then version (00 MPEG-2.5, 01 reserved, 10 MPEG-2, 11 MPEG-1) and
    // layer (01 is Layer III; MP1/MP2 and ADTS AAC are something else).
    let version = (b[1] >> 3) & 0b11;
    let layer = (b[1] >> 1) & 0b11;
    let bitrate_index = (b[2] >> 4) as usize;
    let rate_index = ((b[2] >> 2) & 0b11) as usize;
    let padding = ((b[2] >> 1) & 1) as usize;
    if version == 0b01 || layer != 0b01 || bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
        return None;
    }
    const MPEG1_KBPS: [u32; 15] = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];
    const MPEG2_KBPS: [u32; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
    let (kbps, rates, samples, factor) = match version {
        0b11 => (MPEG1_KBPS[bitrate_index], [44_100, 48_000, 32_000], 1152, 144_000),
        0b10 => (MPEG2_KBPS[bitrate_index], [22_050, 24_000, 16_000], 576, 72_000),
        _ => (MPEG2_KBPS[bitrate_index], [11_025, 12_000, 8_000], 576, 72_000),
    };
    let sample_rate = rates[rate_index];
    Some(Frame {
        len: (factor * kbps / sample_rate) as usize + padding,
        samples,
        sample_rate,
    })
}

/// An MP3: an ID3v2 tag and then a frame, or a frame straight away, whose next frame
/// (when the bytes reach that far) is a frame too. `Some(duration)` from the frames
/// counted until the first thing that is not one (an ID3v1 tag, say).
fn mp3(b: &[u8]) -> Option<Option<i64>> {
    let mut pos = 0usize;
    if b.len() >= 10 && &b[0..3] == b"ID3" {
        // "ID3", major version 2–4, revision, flags, and a 28-bit "syncsafe" size (the
        // high bit of each byte clear); a footer doubles the 10 header bytes.
        if !(2..=4).contains(&b[3]) || b[4] == 0xFF || b[6..10].iter().any(|x| x & 0x80 != 0) {
            return None;
        }
        let size = b[6..10].iter().fold(0usize, |acc, x| (acc << 7) | *x as usize);
        let footer = if b[5] & 0x10 != 0 { 10 } else { 0 };
        pos = 10 + size + footer;
        // Some writers pad past the size the tag declares.
        while pos < b.len() && b[pos] == 0 {
            pos += 1;
        }
    }
    let first = frame(b.get(pos..)?)?;
    if let Some(next) = b.get(pos + first.len..)
        && next.len() >= 4
        && frame(next).is_none()
    {
        // A chance 0xFFE… with no second frame where the first one ends: not audio.
        return None;
    }
    // The first frame may be a Xing/Info header, which holds no audio.
    let head = &b[pos..b.len().min(pos + first.len)];
    let info = head.windows(4).any(|w| w == b"Xing" || w == b"Info");
    let mut samples = 0u64;
    let mut count = 0usize;
    let sample_rate = first.sample_rate;
    while let Some(f) = b.get(pos..).and_then(frame) {
        if f.sample_rate != sample_rate || pos + f.len > b.len() {
            break;
        }
        if !(info && count == 0) {
            samples += u64::from(f.samples);
        }
        count += 1;
        pos += f.len;
    }
    Some((samples > 0).then(|| (samples * 1000 / u64::from(sample_rate)) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PCM WAV: 8 kHz, 16-bit mono (16000 bytes a second), `samples` samples.
    fn wav_bytes(samples: usize) -> Vec<u8> {
        let data = samples * 2;
        let mut v = Vec::new();
        v.extend(b"RIFF");
        v.extend(((36 + data) as u32).to_le_bytes());
        v.extend(b"WAVEfmt ");
        v.extend(16u32.to_le_bytes());
        v.extend(1u16.to_le_bytes()); // PCM
        v.extend(1u16.to_le_bytes()); // mono
        v.extend(8000u32.to_le_bytes());
        v.extend(16000u32.to_le_bytes());
        v.extend(2u16.to_le_bytes());
        v.extend(16u16.to_le_bytes());
        v.extend(b"data");
        v.extend((data as u32).to_le_bytes());
        v.extend(std::iter::repeat_n(0x11, data));
        v
    }

    /// `n` MPEG-1 Layer III frames, 128 kbit/s at 44.1 kHz (417 bytes, 1152 samples each).
    fn mp3_frames(n: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.extend([0xFF, 0xFB, 0x90, 0x64]);
            v.extend(std::iter::repeat_n(0, 413));
        }
        v
    }

    #[test]
    fn wav_and_its_duration() {
        let a = AudioType::sniff(&wav_bytes(8000)).unwrap();
        assert_eq!(a.kind, AudioType::Wav);
        assert_eq!(a.duration_ms, Some(1000));
        assert_eq!(AudioType::sniff(&wav_bytes(4000)).unwrap().duration_ms, Some(500));
        // A data chunk that claims more than there is: what is there counts.
        let mut streamed = wav_bytes(800);
        streamed[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(AudioType::sniff(&streamed).unwrap().duration_ms, Some(100));
        // The header alone: a WAV with no data yet.
        let header = &wav_bytes(0)[..36];
        assert_eq!(AudioType::sniff(header).unwrap().duration_ms, None);
    }

    #[test]
    fn mp3_with_and_without_a_tag() {
        let bare = mp3_frames(10);
        let a = AudioType::sniff(&bare).unwrap();
        assert_eq!(a.kind, AudioType::Mp3);
        assert_eq!(a.duration_ms, Some(11520 * 1000 / 44100));
        let mut tagged = b"ID3\x04\x00\x00\x00\x00\x00\x0a".to_vec();
        tagged.extend(std::iter::repeat_n(0, 10));
        tagged.extend(mp3_frames(3));
        tagged.extend(b"TAG");
        tagged.extend(std::iter::repeat_n(b' ', 125));
        assert_eq!(
            AudioType::sniff(&tagged).unwrap().duration_ms,
            Some(3 * 1152 * 1000 / 44100)
        );
        // One frame, cut short: still an MP3, of no known length.
        let cut = AudioType::sniff(&bare[..100]).unwrap();
        assert_eq!((cut.kind, cut.duration_ms), (AudioType::Mp3, None));
    }

    #[test]
    fn refuses_everything_else() {
        let mut fake_sync = vec![0xFF, 0xFB, 0x90, 0x64];
        fake_sync.extend(std::iter::repeat_n(b'x', 1000));
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            b"hello, I am a text file named greeting.wav".to_vec(),
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(),
            b"RIFF\x24\0\0\0WEBPVP8 ".to_vec(), // a RIFF that is an image
            b"RIFF\x24\0\0\0WAVE".to_vec(),     // no fmt chunk
            b"RIFF\x24\0\0\0WAVEfmt \x10\0\0\0\x01\0".to_vec(), // a fmt chunk cut short
            vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F'], // JPEG
            vec![0xFF, 0xF1, 0x50, 0x80, 0x01, 0xFF, 0xFC], // ADTS AAC
            vec![0xFF, 0xFD, 0x90, 0x64],       // MPEG-1 Layer II
            fake_sync,
            b"ID3\x04\x00\x00\x00\x00\x00\x00".to_vec(), // a tag and nothing else
            b"ID3\x04\x00\x00\x00\x00\x00\x00some text".to_vec(),
            b"ID3 is how my notes start".to_vec(),
            b"%PDF-1.7".to_vec(),
        ];
        for bytes in cases {
            assert_eq!(AudioType::sniff(&bytes), None, "{bytes:?}");
        }
        assert_eq!(AudioType::from_mime("audio/ogg"), None);
        assert_eq!(AudioType::from_mime("audio/mpeg"), Some(AudioType::Mp3));
    }
}
