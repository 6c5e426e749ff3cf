//! A minimal POSIX ustar writer and reader for the support bundle: regular files only, names
//! under 100 bytes, mode 0600, owner 0. `tar -tvf` and `tar -xf` read what this writes; the
//! reader reads only what this writes (anything else is refused).

/// One file of an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its path inside the archive (`logs/server.log`).
    pub name: String,
    /// Its bytes.
    pub data: Vec<u8>,
}

const BLOCK: usize = 512;

fn octal(field: &mut [u8], value: u64) {
    // `width - 1` octal digits, zero-padded, then NUL.
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    let bytes = text.as_bytes();
    let start = bytes.len().saturating_sub(digits);
    if let (Some(dst), Some(src)) = (field.get_mut(..digits), bytes.get(start..)) {
        dst.copy_from_slice(src);
    }
    if let Some(last) = field.last_mut() {
        *last = 0;
    }
}

fn put(header: &mut [u8; BLOCK], at: usize, bytes: &[u8]) {
    if let Some(dst) = header.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

fn header(name: &str, size: u64, mtime: u64) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    put(&mut h, 0, name.as_bytes());
    if let Some(f) = h.get_mut(100..108) {
        octal(f, 0o600);
    }
    if let Some(f) = h.get_mut(108..116) {
        octal(f, 0);
    }
    if let Some(f) = h.get_mut(116..124) {
        octal(f, 0);
    }
    if let Some(f) = h.get_mut(124..136) {
        octal(f, size);
    }
    if let Some(f) = h.get_mut(136..148) {
        octal(f, mtime);
    }
    put(&mut h, 148, b"        ");
    put(&mut h, 156, b"0");
    put(&mut h, 257, b"ustar\0");
    put(&mut h, 263, b"00");
    let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
    let text = format!("{sum:06o}\0 ");
    put(&mut h, 148, text.as_bytes());
    h
}

/// Writes `entries` as a tar archive.
///
/// # Errors
/// A name of 100 bytes or more, or one with a `..` component or a leading `/`.
pub fn write(entries: &[Entry], mtime: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for e in entries {
        if e.name.len() >= 100
            || e.name.starts_with('/')
            || e.name.split('/').any(|c| c.is_empty() || c == "..")
        {
            return Err(format!("`{}` cannot be a name in the bundle", e.name));
        }
        out.extend_from_slice(&header(&e.name, e.data.len() as u64, mtime));
        out.extend_from_slice(&e.data);
        out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
    }
    out.resize(out.len() + 2 * BLOCK, 0);
    Ok(out)
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    u64::from_str_radix(text, 8).ok()
}

/// Reads an archive this module wrote.
///
/// # Errors
/// Anything else: a bad checksum, another entry type, a size past the end.
pub fn read(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    let mut at = 0;
    loop {
        let h = bytes
            .get(at..at + BLOCK)
            .ok_or("the archive ends without its end blocks")?;
        if h.iter().all(|b| *b == 0) {
            return Ok(entries);
        }
        let stored = h
            .get(148..156)
            .and_then(parse_octal)
            .ok_or("a bad checksum field")?;
        let sum: u64 = h
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(*b)
                }
            })
            .sum();
        if sum != stored {
            return Err(format!(
                "entry {} has a wrong header checksum",
                entries.len() + 1
            ));
        }
        if h.get(156) != Some(&b'0') {
            return Err("an entry that is not a regular file".into());
        }
        let name_field = h.get(..100).ok_or("short header")?;
        let end = name_field.iter().position(|b| *b == 0).unwrap_or(100);
        let name = std::str::from_utf8(name_field.get(..end).unwrap_or_default())
            .map_err(|_| "a name that is not UTF-8")?
            .to_owned();
        let size = h
            .get(124..136)
            .and_then(parse_octal)
            .ok_or("a bad size field")?;
        let size = usize::try_from(size).map_err(|_| "a size too large")?;
        let data = bytes
            .get(at + BLOCK..at + BLOCK + size)
            .ok_or("an entry runs past the end")?
            .to_vec();
        entries.push(Entry { name, data });
        at += BLOCK + size.div_ceil(BLOCK) * BLOCK;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back_and_names_are_checked() {
        let entries = vec![
            Entry {
                name: "a.json".into(),
                data: b"{}".to_vec(),
            },
            Entry {
                name: "logs/server.log".into(),
                data: vec![b'x'; 1500],
            },
            Entry {
                name: "empty".into(),
                data: Vec::new(),
            },
        ];
        let bytes = write(&entries, 1_700_000_000).unwrap();
        assert_eq!(bytes.len() % BLOCK, 0);
        assert_eq!(read(&bytes).unwrap(), entries);
        for bad in ["../x", "/etc/passwd", "a//b", &"n".repeat(100)] {
            let e = Entry {
                name: bad.into(),
                data: Vec::new(),
            };
            assert!(write(&[e], 0).is_err(), "{bad}");
        }
        let mut flipped = bytes.clone();
        flipped[10] ^= 1;
        assert!(read(&flipped).is_err());
    }
}
