//! The snapshot file: every state-machine record, self-describing and
//! checksummed, so a truncated or altered snapshot is refused before install.
//!
//! ```text
//! "FLAREDB-SNAP\0" | format u32 BE
//! { tag u8 (1 = cas, 2 = raw, 3 = sm_meta) | key len u32 | key | value len u32 | value }*
//! tag 0 | record count u64 | crc32 of every byte before the crc
//! ```

use std::{
    fs::File,
    io::{self, BufReader, BufWriter, Read, Write},
    path::Path,
};

const MAGIC: &[u8; 13] = b"FLAREDB-SNAP\0";
const FORMAT: u32 = 1;
const END: u8 = 0;
/// Keys and values are limited far below this; a larger length means corruption.
const MAX_FIELD: u32 = 64 * 1024 * 1024;

/// Which column family a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Cas = 1,
    Raw = 2,
    SmMeta = 3,
}

impl Section {
    fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            1 => Some(Section::Cas),
            2 => Some(Section::Raw),
            3 => Some(Section::SmMeta),
            _ => None,
        }
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Writes records to a snapshot file; `finish` seals it and fsyncs.
pub struct SnapshotWriter {
    out: BufWriter<File>,
    crc: crc32fast::Hasher,
    count: u64,
}

impl SnapshotWriter {
    pub fn create(path: &Path) -> io::Result<Self> {
        let mut w = Self {
            out: BufWriter::with_capacity(1 << 20, File::create(path)?),
            crc: crc32fast::Hasher::new(),
            count: 0,
        };
        w.write(MAGIC)?;
        w.write(&FORMAT.to_be_bytes())?;
        Ok(w)
    }

    fn write(&mut self, b: &[u8]) -> io::Result<()> {
        self.crc.update(b);
        self.out.write_all(b)
    }

    pub fn record(&mut self, section: Section, key: &[u8], value: &[u8]) -> io::Result<()> {
        // A field the reader would refuse is refused here, not truncated by a cast.
        let len = |field: &[u8]| u32::try_from(field.len()).ok().filter(|&n| n <= MAX_FIELD);
        let (Some(key_len), Some(value_len)) = (len(key), len(value)) else {
            return Err(invalid(format!("snapshot record of {} + {} bytes is too large", key.len(), value.len())));
        };
        self.write(&[section as u8])?;
        self.write(&key_len.to_be_bytes())?;
        self.write(key)?;
        self.write(&value_len.to_be_bytes())?;
        self.write(value)?;
        self.count = self.count.checked_add(1).ok_or_else(|| invalid("snapshot record count overflows"))?;
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<()> {
        self.write(&[END])?;
        let count = self.count.to_be_bytes();
        self.write(&count)?;
        let crc = self.crc.clone().finalize();
        self.out.write_all(&crc.to_be_bytes())?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    }
}

/// One record: its section, key and value.
pub type Record = (Section, Vec<u8>, Vec<u8>);

/// Reads records back, checking format, lengths, count and checksum.
pub struct SnapshotReader {
    input: BufReader<File>,
    crc: crc32fast::Hasher,
    count: u64,
    done: bool,
}

impl SnapshotReader {
    pub fn open(path: &Path) -> io::Result<Self> {
        let mut r = Self {
            input: BufReader::with_capacity(1 << 20, File::open(path)?),
            crc: crc32fast::Hasher::new(),
            count: 0,
            done: false,
        };
        let magic: [u8; 13] = r.read_array()?;
        if &magic != MAGIC {
            return Err(invalid("not a FlareDB snapshot (bad magic)"));
        }
        let format = u32::from_be_bytes(r.read_array()?);
        if format != FORMAT {
            return Err(invalid(format!("snapshot format {format} is not supported (this build reads {FORMAT})")));
        }
        Ok(r)
    }

    fn read_array<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.input.read_exact(&mut buf).map_err(truncated)?;
        self.crc.update(&buf);
        Ok(buf)
    }

    fn read_field(&mut self) -> io::Result<Vec<u8>> {
        let len = u32::from_be_bytes(self.read_array()?);
        if len > MAX_FIELD {
            return Err(invalid(format!("snapshot record of {len} bytes: corrupt")));
        }
        // Grown as bytes arrive: a length field alone (a 22-byte file claiming
        // 64 MiB) reserves no more than a page of the buffer.
        let mut buf = Vec::with_capacity((len as usize).min(64 << 10));
        (&mut self.input).take(u64::from(len)).read_to_end(&mut buf)?;
        if buf.len() != len as usize {
            return Err(truncated(io::Error::from(io::ErrorKind::UnexpectedEof)));
        }
        self.crc.update(&buf);
        Ok(buf)
    }

    /// The next record, or `None` after the verified end.
    pub fn next_record(&mut self) -> io::Result<Option<Record>> {
        if self.done {
            return Ok(None);
        }
        let [tag] = self.read_array()?;
        if tag == END {
            let count = u64::from_be_bytes(self.read_array()?);
            let expected = self.crc.clone().finalize();
            let mut crc = [0u8; 4];
            self.input.read_exact(&mut crc).map_err(truncated)?;
            if count != self.count || u32::from_be_bytes(crc) != expected {
                return Err(invalid("snapshot checksum mismatch: the file is corrupt"));
            }
            let mut rest = [0u8; 1];
            if self.input.read(&mut rest)? != 0 {
                return Err(invalid("trailing bytes after the snapshot end"));
            }
            self.done = true;
            return Ok(None);
        }
        let section = Section::from_tag(tag).ok_or_else(|| invalid(format!("unknown snapshot record tag {tag}")))?;
        let key = self.read_field()?;
        let value = self.read_field()?;
        self.count = self.count.checked_add(1).ok_or_else(|| invalid("snapshot record count overflows"))?;
        Ok(Some((section, key, value)))
    }

    /// Reads a whole file only to verify it.
    #[cfg(test)]
    pub fn verify(path: &Path) -> io::Result<u64> {
        let mut r = Self::open(path)?;
        while r.next_record()?.is_some() {}
        Ok(r.count)
    }
}

fn truncated(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        invalid("snapshot is truncated")
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(path: &Path) {
        let mut w = SnapshotWriter::create(path).unwrap();
        w.record(Section::Cas, b"k1", b"v1").unwrap();
        w.record(Section::Raw, b"", b"").unwrap();
        w.record(Section::SmMeta, b"m", &[7; 1000]).unwrap();
        w.finish().unwrap();
    }

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        sample(&p);
        let mut r = SnapshotReader::open(&p).unwrap();
        assert_eq!(r.next_record().unwrap(), Some((Section::Cas, b"k1".to_vec(), b"v1".to_vec())));
        assert_eq!(r.next_record().unwrap().unwrap().0, Section::Raw);
        assert_eq!(r.next_record().unwrap().unwrap().2.len(), 1000);
        assert_eq!(r.next_record().unwrap(), None);
        assert_eq!(SnapshotReader::verify(&p).unwrap(), 3);
    }

    #[test]
    fn refuses_truncated_and_altered_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        sample(&p);
        let good = std::fs::read(&p).unwrap();
        for cut in [5, 20, good.len() - 1] {
            std::fs::write(&p, &good[..cut]).unwrap();
            assert!(SnapshotReader::verify(&p).is_err(), "cut at {cut}");
        }
        let mut bad = good.clone();
        bad[good.len() / 2] ^= 1;
        std::fs::write(&p, &bad).unwrap();
        assert!(SnapshotReader::verify(&p).is_err());
    }
}
