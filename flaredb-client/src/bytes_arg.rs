//! What keys, values and prefixes may be given as: anything an author has at
//! hand. Owned `Bytes`, `Vec<u8>` and `String` are taken without a copy;
//! borrowed data of any lifetime (`&str`, `&[u8]`, `&String`, `&Vec<u8>`,
//! `&Bytes`, byte arrays) is copied once.
//!
//! ```no_run
//! # async fn demo(lb: flaredb_client::RdbClient, key: String, value: Vec<u8>) -> Result<(), flaredb_client::ClientError> {
//! lb.cas_put(key.as_str(), value.as_slice(), 0).await?; // borrowed: copied
//! lb.cas_put(key, value, 0).await?; // owned: moved, no copy
//! # Ok(()) }
//! ```

use std::borrow::Cow;

use bytes::Bytes;

/// A key, value or prefix argument of the client (see the module docs).
pub trait IntoBytes {
    fn into_bytes(self) -> Bytes;
}

impl IntoBytes for Bytes {
    fn into_bytes(self) -> Bytes {
        self
    }
}

impl IntoBytes for Vec<u8> {
    fn into_bytes(self) -> Bytes {
        Bytes::from(self)
    }
}

impl IntoBytes for String {
    fn into_bytes(self) -> Bytes {
        Bytes::from(self)
    }
}

impl IntoBytes for Box<[u8]> {
    fn into_bytes(self) -> Bytes {
        Bytes::from(self)
    }
}

impl<const N: usize> IntoBytes for [u8; N] {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(&self)
    }
}

impl IntoBytes for Cow<'_, str> {
    fn into_bytes(self) -> Bytes {
        match self {
            Cow::Borrowed(s) => Bytes::copy_from_slice(s.as_bytes()),
            Cow::Owned(s) => Bytes::from(s),
        }
    }
}

impl IntoBytes for Cow<'_, [u8]> {
    fn into_bytes(self) -> Bytes {
        match self {
            Cow::Borrowed(s) => Bytes::copy_from_slice(s),
            Cow::Owned(v) => Bytes::from(v),
        }
    }
}

impl<T: AsRef<[u8]> + ?Sized> IntoBytes for &T {
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(b: impl IntoBytes) -> Bytes {
        b.into_bytes()
    }

    #[test]
    fn borrowed_and_owned_arguments_of_any_lifetime() {
        let owned = String::from("key");
        let borrowed: &str = owned.as_str();
        assert_eq!(take(borrowed), "key");
        assert_eq!(take(&owned), "key");
        assert_eq!(take(owned.as_bytes()), "key");
        assert_eq!(take(*b"key"), "key");
        assert_eq!(take(Cow::Borrowed("key")), "key");
        assert_eq!(take("key"), "key");
        // Owned buffers are moved, not copied.
        let v = vec![1u8, 2, 3];
        let at = v.as_ptr();
        assert_eq!(take(v).as_ptr(), at);
        let b = Bytes::from_static(b"static");
        assert_eq!(take(b.clone()).as_ptr(), b.as_ptr());
    }
}
