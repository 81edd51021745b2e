//! The POP3 size of a stored message, computed from its wire form.
//!
//! Files hold messages as they came over SMTP: CRLF line ends, still dot-stuffed. RFC 1939 wants
//! LIST/STAT to report the octets RETR sends *before* byte-stuffing, i.e. the unstuffed message: the
//! file's length, minus one for every line that starts with `.` (in wire form each such line carries
//! one stuffing dot), plus 2 when the file does not end with CRLF (RETR adds one before the final
//! dot). A counter fed in chunks lets the store compute this while writing, and for JES-written
//! files while reading once, without holding the whole message.

/// Incremental POP3 size of a wire-form message, fed in arbitrary chunks.
#[derive(Debug, Clone)]
pub struct SizeCounter {
    total: u64,
    stuffed: u64,
    at_line_start: bool,
    last: [u8; 2],
}

impl Default for SizeCounter {
    fn default() -> Self {
        SizeCounter {
            total: 0,
            stuffed: 0,
            at_line_start: true,
            last: [0, 0],
        }
    }
}

impl SizeCounter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        for &b in chunk {
            if self.at_line_start && b == b'.' {
                self.stuffed += 1;
            }
            self.at_line_start = b == b'\n';
            self.last = [self.last[1], b];
        }
        self.total += chunk.len() as u64;
    }

    /// The octets RETR sends before stuffing. An empty file is 0.
    pub fn size(&self) -> u64 {
        let mut size = self.total - self.stuffed;
        if self.total > 0 && self.last != *b"\r\n" {
            size += 2;
        }
        size
    }
}

/// The POP3 size of a whole wire-form message held in memory.
pub fn pop3_size(wire: &[u8]) -> u64 {
    let mut c = SizeCounter::new();
    c.feed(wire);
    c.size()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuffed_lines_count_one_less() {
        assert_eq!(pop3_size(b"a\r\n..b\r\n"), 7);
        assert_eq!(pop3_size(b"..\r\n"), 3);
        assert_eq!(pop3_size(b"x.y\r\n"), 5);
    }

    #[test]
    fn missing_final_crlf_adds_two() {
        assert_eq!(pop3_size(b"abc"), 5);
        assert_eq!(pop3_size(b"abc\r"), 6);
        assert_eq!(pop3_size(b""), 0);
    }

    #[test]
    fn chunking_does_not_matter() {
        let msg = b"Subject: x\r\n\r\n..dot\r\nend\r\n.";
        let whole = pop3_size(msg);
        for split in 0..msg.len() {
            let mut c = SizeCounter::new();
            c.feed(&msg[..split]);
            c.feed(&msg[split..]);
            assert_eq!(c.size(), whole, "split at {split}");
        }
    }
}
