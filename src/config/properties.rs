//! Java `.properties` syntax, keeping line numbers.
//!
//! JES read its files with `java.util.Properties`, so jes accepts the same syntax (`=`, `:` or
//! whitespace separators, `#`/`!` comments, backslash continuations, `\uXXXX` escapes). Two things
//! differ on purpose: trailing whitespace of a value is trimmed (people write `smtpport=25 ` and
//! Java's "25 " then fails in JES with a puzzling error), and every entry remembers the physical
//! line it starts on, so that errors can name it. The file is split into [`Block`]s that cover
//! every physical line, comments included, which is what lets `user.conf` be rewritten in place
//! without losing comments, order or line endings.

use std::path::Path;

use super::{ConfigError, Warning};

/// One logical line of a file: one or more physical lines (continuations), with the entry they
/// hold, if any (comments and blank lines hold none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// 1-based number of the first physical line.
    pub line: usize,
    /// The physical lines, without their line ends.
    pub lines: Vec<String>,
    /// The key and the unescaped, trimmed value.
    pub entry: Option<(String, String)>,
}

/// A parsed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    /// 1-based line the entry starts on.
    pub line: usize,
}

/// The entries of a file, in file order; for a duplicated key only the last one is kept.
#[derive(Debug, Clone, Default)]
pub struct Properties {
    pub entries: Vec<Entry>,
}

impl Properties {
    /// The entry for `key` (exact, case-sensitive as in Java).
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    /// Parses `text`; problems (duplicate keys, malformed `\u` escapes) become warnings for `path`.
    pub fn parse(path: &Path, text: &str) -> (Properties, Vec<Warning>) {
        let mut warnings = Vec::new();
        let mut entries: Vec<Entry> = Vec::new();
        for block in split_blocks(text, &mut |line, message| {
            warnings.push(Warning {
                path: path.to_path_buf(),
                line,
                message,
            })
        }) {
            let Some((key, value)) = block.entry else {
                continue;
            };
            if let Some(pos) = entries.iter().position(|e| e.key == key) {
                let earlier = entries.remove(pos);
                warnings.push(Warning {
                    path: path.to_path_buf(),
                    line: block.line,
                    message: format!(
                        "key '{key}' is set again (first on line {}); the last value wins",
                        earlier.line
                    ),
                });
            }
            entries.push(Entry {
                key,
                value,
                line: block.line,
            });
        }
        (Properties { entries }, warnings)
    }

    /// Reads and parses a file. `Ok(None)` if it does not exist.
    pub fn load(path: &Path) -> Result<Option<(Properties, Vec<Warning>)>, ConfigError> {
        match read_text(path) {
            Ok(text) => Ok(Some(Properties::parse(path, &text))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ConfigError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }
}

/// Reads a file as UTF-8, or, if it is not valid UTF-8, as ISO-8859-1 (what Java's
/// `Properties.load(InputStream)` assumed, so JES-era files with Latin-1 bytes still read).
pub fn read_text(path: &Path) -> std::io::Result<String> {
    Ok(decode_text(std::fs::read(path)?))
}

/// The UTF-8 byte-order mark some Windows editors put at the start of a file.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A file's bytes as text: UTF-8 if they are, else ISO-8859-1 (every byte is a character, so this
/// cannot fail). A UTF-8 byte-order mark at the start is dropped: it is not part of the first key
/// (Java's reader did not skip it either, so JES read `\uFEFF#` as a key), and it is dropped before
/// decoding so that a file with a mark and Latin-1 bytes after it does not start with `ï»¿`.
pub fn decode_text(mut bytes: Vec<u8>) -> String {
    if bytes.starts_with(BOM) {
        bytes.drain(..BOM.len());
    }
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => e.into_bytes().iter().map(|&b| char::from(b)).collect(),
    }
}

/// Splits text into physical lines without their ends (`\r\n`, `\n` or a lone `\r`). A final line
/// end does not start another line.
pub fn physical_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find(['\r', '\n']) {
            Some(i) => {
                lines.push(&rest[..i]);
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
            }
            None => {
                lines.push(rest);
                rest = "";
            }
        }
    }
    lines
}

fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\u{c}')
}

/// Whether a physical line ends with an odd number of backslashes (continues on the next line).
fn continues(line: &str) -> bool {
    line.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// Splits `text` into blocks covering every physical line. `problem(line, message)` is told about
/// malformed escapes.
pub fn split_blocks(text: &str, problem: &mut dyn FnMut(usize, String)) -> Vec<Block> {
    let lines = physical_lines(text);
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let first = lines[i];
        let start = i;
        i += 1;
        let trimmed = first.trim_start_matches(is_ws);
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
            blocks.push(Block {
                line: start + 1,
                lines: vec![first.to_string()],
                entry: None,
            });
            continue;
        }
        // Join continuation lines: drop the final backslash, and the next line's leading blanks.
        let mut logical = String::from(trimmed);
        while continues(&logical) && i < lines.len() {
            logical.pop();
            logical.push_str(lines[i].trim_start_matches(is_ws));
            i += 1;
        }
        if continues(&logical) {
            // A backslash on the file's last line continues into nothing: Java drops it.
            logical.pop();
        }
        let entry = parse_logical(&logical, start + 1, problem);
        blocks.push(Block {
            line: start + 1,
            lines: lines[start..i].iter().map(|s| s.to_string()).collect(),
            entry: Some(entry),
        });
    }
    blocks
}

/// Splits a logical line into key and value, Java's way.
fn parse_logical(
    logical: &str,
    line: usize,
    problem: &mut dyn FnMut(usize, String),
) -> (String, String) {
    let chars: Vec<char> = logical.chars().collect();
    let mut key_end = chars.len();
    let mut j = 0;
    while j < chars.len() {
        match chars[j] {
            '\\' => j += 2,
            c if c == '=' || c == ':' || is_ws(c) => {
                key_end = j;
                break;
            }
            _ => j += 1,
        }
    }
    let mut v = key_end.min(chars.len());
    while v < chars.len() && is_ws(chars[v]) {
        v += 1;
    }
    if v < chars.len() && (chars[v] == '=' || chars[v] == ':') {
        v += 1;
    }
    while v < chars.len() && is_ws(chars[v]) {
        v += 1;
    }
    let key_raw: String = chars[..key_end.min(chars.len())].iter().collect();
    let value_raw: String = chars[v..].iter().collect();
    let (key, _) = unescape(&key_raw, line, problem);
    let (mut value, keep) = unescape(&value_raw, line, problem);
    // Trim trailing whitespace, but never an escaped character (`a\ ` keeps its space).
    let trimmed_len = value.trim_end().len().max(keep);
    value.truncate(trimmed_len);
    (key, value)
}

/// Resolves escapes. Returns the text and the byte length up to the end of the last escaped
/// character (which trailing-space trimming must not cut into).
fn unescape(raw: &str, line: usize, problem: &mut dyn FnMut(usize, String)) -> (String, usize) {
    let mut out = String::with_capacity(raw.len());
    let mut keep = 0;
    let mut it = raw.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(e) = it.next() else { break };
        match e {
            't' => out.push('\t'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            'f' => out.push('\u{c}'),
            'u' => {
                let hex: String = (0..4)
                    .map_while(|_| it.next_if(char::is_ascii_hexdigit))
                    .collect();
                match u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .and_then(char::from_u32)
                {
                    Some(ch) => out.push(ch),
                    None => {
                        problem(
                            line,
                            format!("malformed \\uXXXX escape '\\u{hex}', kept as written"),
                        );
                        out.push_str("\\u");
                        out.push_str(&hex);
                    }
                }
            }
            other => out.push(other),
        }
        keep = out.len();
    }
    (out, keep)
}

/// Escapes a key for writing (`=`, `:`, blanks, a leading `#`/`!`, backslashes, control characters).
pub fn escape_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for (i, c) in key.chars().enumerate() {
        match c {
            '=' | ':' | ' ' => {
                out.push('\\');
                out.push(c);
            }
            '#' | '!' if i == 0 => {
                out.push('\\');
                out.push(c);
            }
            _ => push_escaped(&mut out, c),
        }
    }
    out
}

/// Escapes a value for writing (backslashes, control characters, leading and trailing blanks).
/// Reading trims every trailing blank `str::trim_end` knows, Unicode ones included, so a last
/// character that is one is written as `\uXXXX` (all of them are in the BMP).
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let n = value.chars().count();
    for (i, c) in value.chars().enumerate() {
        let last = i + 1 == n;
        if c == ' ' && (i == 0 || last) {
            out.push_str("\\ ");
        } else if last && c.is_whitespace() && !c.is_control() {
            out.push_str(&format!("\\u{:04X}", u32::from(c)));
        } else {
            push_escaped(&mut out, c);
        }
    }
    out
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\t' => out.push_str("\\t"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\u{c}' => out.push_str("\\f"),
        c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> (Properties, Vec<Warning>) {
        Properties::parse(Path::new("/x/t.conf"), text)
    }

    fn kv(p: &Properties) -> Vec<(&str, &str, usize)> {
        p.entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str(), e.line))
            .collect()
    }

    #[test]
    fn separators_comments_and_lines() {
        let (p, w) =
            parse("# comment\n! also comment\n\n  a=1\nb:2\nc 3\nd = 4 \ne\t:\t5\t\nf\ng=\n");
        assert!(w.is_empty());
        assert_eq!(
            kv(&p),
            vec![
                ("a", "1", 4),
                ("b", "2", 5),
                ("c", "3", 6),
                ("d", "4", 7),
                ("e", "5", 8),
                ("f", "", 9),
                ("g", "", 10)
            ]
        );
    }

    #[test]
    fn continuations_and_escapes() {
        let text = "list=a,\\\n    b,\\\r\n  c\nk\\=ey=v\\:1\nu=\\u0041\\u00e9\nsp=x\\ \nback=a\\\\\nnext=1\n";
        let (p, w) = parse(text);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            kv(&p),
            vec![
                ("list", "a,b,c", 1),
                ("k=ey", "v:1", 4),
                ("u", "Aé", 5),
                ("sp", "x ", 6),
                ("back", "a\\", 7),
                ("next", "1", 8)
            ]
        );
    }

    #[test]
    fn comment_lines_do_not_continue() {
        let (p, _) = parse("# comment \\\na=1\n");
        assert_eq!(kv(&p), vec![("a", "1", 2)]);
    }

    #[test]
    fn trailing_backslash_at_eof() {
        let (p, _) = parse("a=1\\");
        assert_eq!(kv(&p), vec![("a", "1", 1)]);
    }

    #[test]
    fn duplicates_last_wins_with_warning() {
        let (p, w) = parse("a=1\nb=2\na=3\n");
        assert_eq!(kv(&p), vec![("b", "2", 2), ("a", "3", 3)]);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].line, 3);
        assert!(w[0].message.contains("line 1"), "{}", w[0].message);
    }

    #[test]
    fn bad_unicode_escape_warns() {
        let (p, w) = parse("a=\\u12G4\n");
        assert_eq!(p.get("a").map(|e| e.value.as_str()), Some("\\u12G4"));
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn blocks_cover_every_line() {
        let text = "# c\r\na=1\\\r\n  2\r\n\r\nb=3";
        let blocks = split_blocks(text, &mut |_, _| {});
        let lines: usize = blocks.iter().map(|b| b.lines.len()).sum();
        assert_eq!(lines, 5);
        assert_eq!(blocks[1].entry, Some(("a".into(), "12".into())));
        assert_eq!(blocks[3].line, 5);
    }

    #[test]
    fn escape_round_trip() {
        for (k, v) in [("a b=c:d", " v\\al\tue "), ("#x", "é\u{1}"), ("!y", "")] {
            let line = format!("{}={}", escape_key(k), escape_value(v));
            let (p, _) = parse(&line);
            assert_eq!(kv(&p), vec![(k, v, 1)], "{line}");
        }
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.conf");
        std::fs::write(&path, b"\xEF\xBB\xBF# comment\na=1\n").unwrap();
        let text = read_text(&path).unwrap();
        assert_eq!(text, "# comment\na=1\n");
        let (p, w) = parse(&text);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(kv(&p), vec![("a", "1", 2)]);
        // With Latin-1 after the mark, the mark still goes and the rest reads as Latin-1.
        std::fs::write(&path, b"\xEF\xBB\xBFa=caf\xe9\n").unwrap();
        assert_eq!(read_text(&path).unwrap(), "a=café\n");
        // Only at the start: a mark inside a value is the user's business.
        std::fs::write(&path, "a=x\u{feff}\n").unwrap();
        assert_eq!(read_text(&path).unwrap(), "a=x\u{feff}\n");
    }

    #[test]
    fn latin1_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.conf");
        std::fs::write(&path, b"a=caf\xe9\n").unwrap();
        assert_eq!(read_text(&path).unwrap(), "a=café\n");
    }
}
