//! A small store of opaque files on local disk (uploaded client logos, sign-up documents,
//! voice recordings):
//! `<data_dir>/blobs/<account_id>/<random token>.<ext>`.
//!
//! Names are made here from a fresh random token and an extension the caller picks from
//! its own fixed list, never from anything a request carried, so a name can neither
//! escape its account's folder nor be guessed or collide. The database row that uses a
//! blob keeps its name; names read back from there are checked again before they touch
//! the file system, in case a row was edited by hand.

use std::io;
use std::path::{Path, PathBuf};

pub struct Blobs {
    root: PathBuf,
}

impl Blobs {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("blobs"),
        }
    }

    fn account_dir(&self, account_id: i64) -> PathBuf {
        self.root.join(account_id.to_string())
    }

    fn path(&self, account_id: i64, name: &str) -> io::Result<PathBuf> {
        if !is_blob_name(name) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not a blob name: {name:?}"),
            ));
        }
        Ok(self.account_dir(account_id).join(name))
    }

    /// Store `bytes` as a new blob of `account_id`; returns its name.
    pub async fn write(&self, account_id: i64, ext: &'static str, bytes: &[u8]) -> io::Result<String> {
        let name = format!("{}.{ext}", sauti_core::secret::generate_token());
        let path = self.path(account_id, &name)?;
        tokio::fs::create_dir_all(self.account_dir(account_id)).await?;
        if let Err(e) = tokio::fs::write(&path, bytes).await {
            // Nothing points at the name yet, so a partial file would only be litter.
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e);
        }
        Ok(name)
    }

    /// The blob's bytes, or `None` when there is no such file.
    pub async fn read(&self, account_id: i64, name: &str) -> io::Result<Option<Vec<u8>>> {
        match tokio::fs::read(self.path(account_id, name)?).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Remove a blob; one already gone is not an error.
    pub async fn delete(&self, account_id: i64, name: &str) -> io::Result<()> {
        match tokio::fs::remove_file(self.path(account_id, name)?).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Remove every blob of an account (the account is being deleted).
    pub async fn delete_account(&self, account_id: i64) -> io::Result<()> {
        match tokio::fs::remove_dir_all(self.account_dir(account_id)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// `<token>.<ext>` with a URL-safe base64 token and a short lower-case extension: what
/// [`Blobs::write`] makes, and nothing that could name another path.
fn is_blob_name(name: &str) -> bool {
    let Some((token, ext)) = name.split_once('.') else {
        return false;
    };
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && (1..=8).contains(&ext.len())
        && ext.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> PathBuf {
        std::env::temp_dir().join(format!("sauti-blobs-{}", sauti_core::secret::generate_token()))
    }

    #[tokio::test]
    async fn write_read_delete() {
        let dir = scratch();
        let blobs = Blobs::new(&dir);
        let a = blobs.write(7, "png", b"first").await.unwrap();
        let b = blobs.write(7, "png", b"second").await.unwrap();
        assert_ne!(a, b, "every write gets a fresh name");
        assert!(a.ends_with(".png") && is_blob_name(&a), "{a}");
        assert!(dir.join("blobs").join("7").join(&a).is_file());
        assert_eq!(blobs.read(7, &a).await.unwrap().as_deref(), Some(&b"first"[..]));
        assert_eq!(blobs.read(8, &a).await.unwrap(), None, "another account's folder");

        blobs.delete(7, &a).await.unwrap();
        assert_eq!(blobs.read(7, &a).await.unwrap(), None);
        blobs.delete(7, &a).await.unwrap();

        blobs.delete_account(7).await.unwrap();
        assert_eq!(blobs.read(7, &b).await.unwrap(), None);
        blobs.delete_account(7).await.unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn names_that_could_leave_the_folder_are_refused() {
        let blobs = Blobs::new(&scratch());
        for name in [
            "../x.png", "a/b.png", "..", ".png", "x.", "x", "x.PNG", "x.png/..", "x.p.ng", "a\\b.png",
        ] {
            assert!(!is_blob_name(name), "{name}");
            let err = blobs.read(1, name).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{name}");
            assert!(blobs.delete(1, name).await.is_err(), "{name}");
        }
    }
}
