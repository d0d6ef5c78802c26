//! Recognising the image formats sauti accepts for uploads (client logos) by their magic
//! numbers. The type a caller declares is never trusted: a text file named `logo.png` or
//! sent as `image/png` is still not an image, and what is served back must carry the type
//! of the bytes actually stored.

/// An accepted image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    Png,
    Jpeg,
    Gif,
    Webp,
}

impl ImageType {
    const ALL: [ImageType; 4] = [ImageType::Png, ImageType::Jpeg, ImageType::Gif, ImageType::Webp];

    /// The format of `bytes`, from their first bytes; `None` for anything else.
    pub fn sniff(bytes: &[u8]) -> Option<ImageType> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(ImageType::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(ImageType::Jpeg)
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            Some(ImageType::Gif)
        } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
            // RIFF container: "RIFF", a 4-byte size, then the form type.
            Some(ImageType::Webp)
        } else {
            None
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            ImageType::Png => "image/png",
            ImageType::Jpeg => "image/jpeg",
            ImageType::Gif => "image/gif",
            ImageType::Webp => "image/webp",
        }
    }

    /// The file extension a stored image gets; [`ImageType::from_ext`] reads it back, so
    /// the type needs no column of its own.
    pub fn ext(self) -> &'static str {
        match self {
            ImageType::Png => "png",
            ImageType::Jpeg => "jpg",
            ImageType::Gif => "gif",
            ImageType::Webp => "webp",
        }
    }

    pub fn from_ext(ext: &str) -> Option<ImageType> {
        Self::ALL.into_iter().find(|t| t.ext() == ext)
    }
}

#[cfg(test)]
mod tests {
    use super::ImageType;

    #[test]
    fn sniffs_each_accepted_format() {
        let cases: [(&[u8], ImageType); 5] = [
            (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", ImageType::Png),
            (&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F'], ImageType::Jpeg),
            (b"GIF87a\x01\x00", ImageType::Gif),
            (b"GIF89a\x01\x00", ImageType::Gif),
            (b"RIFF\x24\0\0\0WEBPVP8 ", ImageType::Webp),
        ];
        for (bytes, want) in cases {
            assert_eq!(ImageType::sniff(bytes), Some(want), "{bytes:?}");
            assert_eq!(ImageType::from_ext(want.ext()), Some(want));
        }
    }

    #[test]
    fn refuses_everything_else() {
        let cases: [&[u8]; 9] = [
            b"",
            b"\x89PNG",                 // a truncated signature
            b"\x89PNG\r\n\x1a",         // one byte short
            b"hello, I am a text file", // what a renamed .png often is
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
            b"GIF88a",
            b"RIFF\x24\0\0\0WAVEfmt ", // a RIFF that is audio
            b"RIFF\0\0\0\0WEB",
            b"%PDF-1.7",
        ];
        for bytes in cases {
            assert_eq!(ImageType::sniff(bytes), None, "{bytes:?}");
        }
        assert_eq!(ImageType::from_ext("svg"), None);
        assert_eq!(ImageType::from_ext("jpeg"), None);
    }
}
