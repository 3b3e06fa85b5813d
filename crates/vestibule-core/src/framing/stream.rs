//! Message boundaries on an HTTP/1 request stream, followed byte by byte,
//! to find a request head that carries both `Content-Length` and
//! `Transfer-Encoding`.
//!
//! RFC 9112 §6.1 and §6.3 item 3 let a server either read such a request
//! as chunked and close the connection after it, or reject it; vestibule
//! rejects it (400, connection closed), like every other ambiguous
//! framing. hyper's parser takes the first branch and drops the
//! `Content-Length` field before the request reaches a service, so the
//! fact can only be seen in the bytes. [`Tracker`] is fed every byte the
//! server reads from one connection, in whatever pieces they arrive, and
//! follows the message boundaries exactly as hyper 1.x does:
//!
//! - empty lines before a request line are skipped (httparse);
//! - the request line and field lines end in CRLF or a bare LF
//!   (httparse); the head ends at the first empty line;
//! - the body is chunked when `Transfer-Encoding` names `chunked` last,
//!   otherwise `Content-Length` bytes, otherwise empty (RFC 9112 §6.3);
//! - a chunked body is read with hyper's state machine (RFC 9112 §7.1):
//!   hex size, optional SP/HTAB, `;` extensions up to a CR, CRLF, data,
//!   CRLF, … the last chunk `0`, then trailer lines each ended by CRLF,
//!   then CRLF.
//!
//! It reports the index (0, 1, 2… in the order of the heads on the
//! connection) of the first head with both fields. hyper closes the
//! connection after such a request, so nothing later matters, and the
//! tracker stops there. It also stops, and then never reports anything,
//! where the bytes after a head need not be HTTP/1 requests (the HTTP/2
//! preface, any version other than HTTP/1.0 or 1.1, a request with
//! `Upgrade`, or `CONNECT`), and where it cannot follow them (a line or
//! chunk hyper refuses, a line longer than the cap it was built with):
//! hyper refuses those requests itself and closes the connection, so a
//! boundary the two might place differently is never acted on.
//!
//! Memory is bounded by the cap: only a line split across two reads is
//! copied; `Content-Length` bodies and chunk data are skipped by count.

/// Follows one connection's request stream; see the module documentation.
#[derive(Debug, Clone)]
pub struct Tracker {
    state: State,
    /// The start of a line that did not end in the bytes fed so far.
    partial: Vec<u8>,
    /// Longest line kept in `partial`; beyond it the tracker stops.
    max_line: usize,
    /// Heads completed so far: the index the next head will get.
    heads: u64,
    head: Head,
    /// The current chunk's size, while it is read.
    chunk_size: u64,
    first_ambiguous: Option<u64>,
}

/// Where in the stream the next byte falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before a request line (empty lines are skipped).
    Start,
    /// In the field lines of a head.
    Fields,
    /// This many `Content-Length` body bytes are still to come.
    Length(u64),
    /// In a chunked body.
    Chunked(Chunk),
    /// No longer following the stream.
    Stopped,
}

/// hyper's `ChunkedState` (proto/h1/decode.rs), state for state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// The first hex digit of a chunk size.
    SizeStart,
    /// More hex digits, SP/HTAB, `;` or CR.
    Size,
    /// SP/HTAB after the size: more of it, `;` or CR.
    SizeLws,
    /// An extension: anything but LF, up to a CR.
    Extension,
    /// The LF ending the size line.
    SizeLf,
    /// This many data bytes are still to come.
    Data(u64),
    /// The CR after a chunk's data.
    DataCr,
    /// The LF after a chunk's data.
    DataLf,
    /// After the last chunk or a trailer line: CR (the end) or a trailer.
    EndCr,
    /// The LF ending the message.
    EndLf,
    /// In a trailer line, up to a CR.
    Trailer,
    /// The LF ending a trailer line.
    TrailerLf,
}

/// What the current head's field lines said about framing.
#[derive(Debug, Clone, Copy, Default)]
struct Head {
    http11: bool,
    /// `CONNECT` or an `Upgrade` field: the bytes after it may be a tunnel.
    tunnel: bool,
    content_length: bool,
    /// The first `Content-Length` value, while every line so far held a
    /// valid and equal one (hyper's rule); `None` once one did not.
    length: Option<u64>,
    transfer_encoding: bool,
    /// Whether the last `Transfer-Encoding` line ends in `chunked`.
    chunked: bool,
}

impl Tracker {
    /// A tracker at the start of a connection, keeping at most `max_line`
    /// bytes of a line split across reads (hyper's `max_buf_size` is the
    /// natural cap: hyper refuses a head longer than that anyway).
    pub fn new(max_line: usize) -> Self {
        Self {
            state: State::Start,
            partial: Vec::new(),
            max_line,
            heads: 0,
            head: Head::default(),
            chunk_size: 0,
            first_ambiguous: None,
        }
    }

    /// The index of the first head seen with both `Content-Length` and
    /// `Transfer-Encoding`, if any.
    pub fn first_ambiguous(&self) -> Option<u64> {
        self.first_ambiguous
    }

    /// Whether the tracker still follows the stream.
    pub fn tracking(&self) -> bool {
        self.state != State::Stopped
    }

    /// Heads completed so far.
    pub fn heads(&self) -> u64 {
        self.heads
    }

    /// Follows `bytes`, the next bytes read from the connection, and
    /// returns [`Self::first_ambiguous`].
    pub fn feed(&mut self, mut bytes: &[u8]) -> Option<u64> {
        while !bytes.is_empty() {
            match self.state {
                State::Stopped => break,
                State::Start | State::Fields => {
                    let Some(lf) = memchr::memchr(b'\n', bytes) else {
                        if self.partial.len() + bytes.len() > self.max_line {
                            self.stop();
                        } else {
                            self.partial.extend_from_slice(bytes);
                        }
                        break;
                    };
                    if self.partial.is_empty() {
                        self.line(&bytes[..lf]);
                    } else if self.partial.len() + lf > self.max_line {
                        self.stop();
                    } else {
                        let mut line = std::mem::take(&mut self.partial);
                        line.extend_from_slice(&bytes[..lf]);
                        self.line(&line);
                        line.clear();
                        if self.partial.capacity() == 0 && self.tracking() {
                            self.partial = line;
                        }
                    }
                    bytes = &bytes[lf + 1..];
                }
                State::Length(left) => {
                    let n = skip(&mut bytes, left);
                    self.state = if n == left {
                        State::Start
                    } else {
                        State::Length(left - n)
                    };
                }
                State::Chunked(Chunk::Data(left)) => {
                    let n = skip(&mut bytes, left);
                    self.state = State::Chunked(if n == left {
                        Chunk::DataCr
                    } else {
                        Chunk::Data(left - n)
                    });
                }
                State::Chunked(chunk) => {
                    let b = bytes[0];
                    bytes = &bytes[1..];
                    self.state = self.chunk_byte(chunk, b);
                }
            }
        }
        self.first_ambiguous
    }

    fn stop(&mut self) {
        self.state = State::Stopped;
        self.partial = Vec::new();
    }

    /// One line of a head (without its LF).
    fn line(&mut self, line: &[u8]) {
        // httparse takes CRLF or a bare LF; a CR anywhere else is an error.
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if memchr::memchr(b'\r', line).is_some() {
            return self.stop();
        }
        match self.state {
            State::Start if line.is_empty() => {}
            State::Start => self.request_line(line),
            State::Fields if line.is_empty() => self.end_of_head(),
            State::Fields => self.field_line(line),
            _ => unreachable!("lines are only read in a head"),
        }
    }

    /// `method SP request-target SP HTTP-version` (RFC 9112 §3), with the
    /// single spaces httparse insists on.
    fn request_line(&mut self, line: &[u8]) {
        let mut parts = line.split(|&b| b == b' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return self.stop();
        };
        let http11 = match version {
            b"HTTP/1.1" => true,
            b"HTTP/1.0" => false,
            // The HTTP/2 preface (`PRI * HTTP/2.0`) or a version hyper
            // refuses: not an HTTP/1 stream to follow.
            _ => return self.stop(),
        };
        if method.is_empty() || target.is_empty() {
            return self.stop();
        }
        self.head = Head {
            http11,
            // Checked without regard to case: stopping costs only the
            // check, following a tunnel could misread it.
            tunnel: method.eq_ignore_ascii_case(b"CONNECT"),
            ..Head::default()
        };
        self.state = State::Fields;
    }

    /// `field-name ":" OWS field-value OWS` (RFC 9112 §5).
    fn field_line(&mut self, line: &[u8]) {
        let Some(colon) = memchr::memchr(b':', line) else {
            return self.stop();
        };
        let name = &line[..colon];
        // httparse refuses white space in or after a name, and a line
        // starting with it (obsolete folding, RFC 9112 §5.2).
        if name.is_empty() || name.iter().any(|&b| b == b' ' || b == b'\t') {
            return self.stop();
        }
        let value = line[colon + 1..].trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") {
            let first = !self.head.content_length;
            self.head.content_length = true;
            let n = digits(value);
            self.head.length = match (first, self.head.length, n) {
                (true, _, n) => n,
                (false, Some(prev), Some(n)) if prev == n => Some(n),
                _ => None,
            };
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.head.transfer_encoding = true;
            // hyper's `is_chunked_`: the last line's last element, and
            // only a value of visible ASCII.
            self.head.chunked = value.iter().all(|&b| b == b'\t' || (32..127).contains(&b))
                && value
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            self.head.tunnel = true;
        }
    }

    fn end_of_head(&mut self) {
        let index = self.heads;
        self.heads += 1;
        let head = self.head;
        if head.content_length && head.transfer_encoding {
            // hyper reads this one as chunked and closes the connection
            // after it: nothing after it is a request.
            self.first_ambiguous = Some(index);
            return self.stop();
        }
        if head.tunnel {
            return self.stop();
        }
        self.state = if head.transfer_encoding {
            if !head.chunked || !head.http11 {
                // hyper refuses it (RFC 9112 §6.1).
                return self.stop();
            }
            self.chunk_size = 0;
            State::Chunked(Chunk::SizeStart)
        } else if head.content_length {
            match head.length {
                Some(0) => State::Start,
                // hyper's `DecodedLength::checked_new` limit.
                Some(n) if n <= u64::MAX - 2 => State::Length(n),
                _ => return self.stop(),
            }
        } else {
            State::Start
        };
    }

    /// One byte of a chunked body outside chunk data.
    fn chunk_byte(&mut self, chunk: Chunk, b: u8) -> State {
        let next = match (chunk, b) {
            (Chunk::SizeStart | Chunk::Size, _) if b.is_ascii_hexdigit() => {
                let digit = u64::from((b as char).to_digit(16).unwrap_or(0));
                match self
                    .chunk_size
                    .checked_mul(16)
                    .and_then(|n| n.checked_add(digit))
                {
                    Some(n) => self.chunk_size = n,
                    None => return State::Stopped,
                }
                Chunk::Size
            }
            (Chunk::Size | Chunk::SizeLws, b' ' | b'\t') => Chunk::SizeLws,
            (Chunk::Size | Chunk::SizeLws, b';') => Chunk::Extension,
            (Chunk::Size | Chunk::SizeLws | Chunk::Extension, b'\r') => Chunk::SizeLf,
            // hyper refuses a LF in an extension.
            (Chunk::Extension, b'\n') => return State::Stopped,
            (Chunk::Extension, _) => Chunk::Extension,
            (Chunk::SizeLf, b'\n') if self.chunk_size == 0 => Chunk::EndCr,
            (Chunk::SizeLf, b'\n') => {
                let size = self.chunk_size;
                self.chunk_size = 0;
                Chunk::Data(size)
            }
            (Chunk::DataCr, b'\r') => Chunk::DataLf,
            (Chunk::DataLf, b'\n') => Chunk::SizeStart,
            (Chunk::EndCr, b'\r') => Chunk::EndLf,
            (Chunk::Trailer, b'\r') => Chunk::TrailerLf,
            (Chunk::EndCr | Chunk::Trailer, _) => Chunk::Trailer,
            (Chunk::TrailerLf, b'\n') => Chunk::EndCr,
            (Chunk::EndLf, b'\n') => return State::Start,
            _ => return State::Stopped,
        };
        State::Chunked(next)
    }
}

/// Advances `bytes` by up to `left` bytes; returns how many.
fn skip(bytes: &mut &[u8], left: u64) -> u64 {
    let n = usize::try_from(left).map_or(bytes.len(), |l| l.min(bytes.len()));
    *bytes = &bytes[n..];
    n as u64
}

/// hyper's `from_digits`: `1*DIGIT` fitting a `u64`.
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CAP: usize = 64 * 1024;

    /// The verdict and head count for `stream` fed whole, then one byte at
    /// a time (the two must agree).
    fn run(stream: &[u8]) -> (Option<u64>, u64, bool) {
        let mut whole = Tracker::new(CAP);
        whole.feed(stream);
        let mut bytewise = Tracker::new(CAP);
        for b in stream {
            bytewise.feed(std::slice::from_ref(b));
        }
        assert_eq!(
            (whole.first_ambiguous(), whole.heads(), whole.tracking()),
            (
                bytewise.first_ambiguous(),
                bytewise.heads(),
                bytewise.tracking()
            ),
        );
        (whole.first_ambiguous(), whole.heads(), whole.tracking())
    }

    #[test]
    fn both_fields_in_either_order_and_case_are_found() {
        for head in [
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            "POST / HTTP/1.1\nhost: a\ncontent-length:5\ntransfer-encoding:  CHUNKED \n\n",
            "POST / HTTP/1.1\r\nTRANSFER-ENCODING: gzip, chunked\r\nCONTENT-LENGTH: x\r\n\r\n",
            // Not something hyper would accept, but both are named.
            "POST / HTTP/1.0\r\nContent-Length: 1\r\nTransfer-Encoding: identity\r\n\r\n",
        ] {
            assert_eq!(run(head.as_bytes()), (Some(0), 1, false), "{head}");
        }
    }

    #[test]
    fn a_later_head_is_found_by_its_index() {
        let stream = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\
            POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc\
            \r\n\r\nPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\
            POST / HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(run(stream), (Some(3), 4, false));
    }

    #[test]
    fn bodies_that_look_like_heads_are_skipped() {
        let body = "GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let stream = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}GET / HTTP/1.1\r\n\r\n",
            body.len()
        );
        assert_eq!(run(stream.as_bytes()), (None, 2, true));
        let chunked = format!(
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            body.len()
        );
        assert_eq!(run(chunked.as_bytes()), (None, 2, true));
    }

    #[test]
    fn chunk_extensions_white_space_and_trailers_are_read_past() {
        let stream = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
            3 \t;name=value;q=\"a\\\"b\"\r\nabc\r\n\
            0A;x\r\n0123456789\r\n\
            000;last\r\nTrailer-A: 1\r\nContent-Length: 9\r\n\r\n\
            GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(run(stream), (Some(1), 2, false));
    }

    #[test]
    fn bare_lf_ends_head_lines_and_empty_lines_before_a_request_are_skipped() {
        let stream = b"\r\n\nGET / HTTP/1.1\nHost: a\n\n\r\nGET / HTTP/1.0\r\nHost: a\n\r\n\
            POST / HTTP/1.1\nContent-Length: 1\nTransfer-Encoding: chunked\n\n";
        assert_eq!(run(stream), (Some(2), 3, false));
    }

    #[test]
    fn it_stops_where_the_stream_may_not_be_http1() {
        let ambiguous =
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        for first in [
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
            "GET / HTTP/3\r\n\r\n",
            "GET  / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            "GET / HTTP/1.1\r\nno colon\r\n\r\n",
            "GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nx\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\r\n0\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;a\nb\r\nx\r\n0\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n0\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1 1\r\nx\r\n0\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: b\r\r\n\r\n",
        ] {
            let stream = format!("{first}{ambiguous}");
            let (verdict, _, tracking) = run(stream.as_bytes());
            assert_eq!((verdict, tracking), (None, false), "{first:?}");
        }
    }

    #[test]
    fn a_line_longer_than_the_cap_stops_it() {
        let mut t = Tracker::new(16);
        t.feed(b"GET / HTTP/1.1\r\nX-Long: 0123");
        assert!(t.tracking());
        t.feed(b"456789\r\n");
        assert!(!t.tracking());
        let mut t = Tracker::new(16);
        t.feed(b"GET / HTTP/1.1\r\nX-Long: 0123456789abcdef");
        assert!(!t.tracking());
        assert!(t.partial.capacity() == 0);
    }

    /// One request of the generated stream, and whether it carries both
    /// fields.
    #[derive(Debug, Clone)]
    struct Generated {
        bytes: Vec<u8>,
        ambiguous: bool,
        tunnel: bool,
    }

    /// A field line ending, as httparse accepts them.
    fn eol() -> impl Strategy<Value = &'static str> {
        prop_oneof![Just("\r\n"), Just("\n")]
    }

    fn te_value() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just("chunked"),
            Just("Chunked"),
            Just(" CHUNKED "),
            Just("gzip, chunked"),
            Just("identity,chunked"),
        ]
    }

    fn cl_name() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just("Content-Length"),
            Just("content-length"),
            Just("CONTENT-LENGTH")
        ]
    }

    fn te_name() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just("Transfer-Encoding"),
            Just("transfer-encoding"),
            Just("TRANSFER-encoding")
        ]
    }

    /// Body text that looks like a head, to be skipped, not parsed.
    fn body_text() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            Just(b"\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec()),
            Just(b"0\r\n\r\n".to_vec()),
        ]
    }

    /// A chunked body: chunks of `body_text`, optional extensions, an
    /// optional trailer section. Strictly valid (checked against
    /// [`crate::framing::chunked_body_ok`]).
    fn chunked_body() -> impl Strategy<Value = Vec<u8>> {
        (
            proptest::collection::vec(
                (
                    body_text().prop_filter("a chunk has data", |d| !d.is_empty()),
                    any::<bool>(),
                    0usize..3,
                ),
                0..4,
            ),
            proptest::option::of(Just("X-Trailer: a\r\nContent-Length: 7\r\n")),
            any::<bool>(),
        )
            .prop_map(|(chunks, trailer, upper)| {
                let mut out = Vec::new();
                for (data, ext, zeros) in chunks {
                    let size = format!("{}{:x}", "0".repeat(zeros), data.len());
                    out.extend_from_slice(
                        if upper { size.to_uppercase() } else { size }.as_bytes(),
                    );
                    if ext {
                        out.extend_from_slice(br#" ;a=b; c="d;\"\r\n""#);
                    }
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(&data);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n");
                out.extend_from_slice(trailer.unwrap_or("").as_bytes());
                out.extend_from_slice(b"\r\n");
                out
            })
    }

    /// How the generated request frames its body.
    #[derive(Debug, Clone)]
    enum Framing {
        None,
        Length(Vec<u8>),
        Chunked(Vec<u8>),
        /// Both fields, `Content-Length` first or not; a chunked body.
        Both(bool, Vec<u8>),
    }

    fn request() -> impl Strategy<Value = Generated> {
        let framing = prop_oneof![
            Just(Framing::None),
            body_text().prop_map(Framing::Length),
            chunked_body().prop_map(Framing::Chunked),
            (any::<bool>(), chunked_body()).prop_map(|(f, b)| Framing::Both(f, b)),
        ];
        (
            framing,
            proptest::collection::vec(eol(), 8),
            cl_name(),
            te_name(),
            te_value(),
            0usize..3,
            any::<bool>(),
            0u8..8,
        )
            .prop_map(|(framing, eols, cl, te, tev, blank, http10, method)| {
                let mut head = String::new();
                for e in eols.iter().take(blank) {
                    head.push_str(e);
                }
                let http10 = http10 && matches!(framing, Framing::None | Framing::Length(_));
                let tunnel = method == 7;
                let method = match method {
                    0..=3 => "GET",
                    4 | 5 => "POST",
                    6 => "PUT",
                    _ => "CONNECT",
                };
                let target = if tunnel { "a.example:443" } else { "/x?y=1" };
                let version = if http10 { "HTTP/1.0" } else { "HTTP/1.1" };
                head.push_str(&format!("{method} {target} {version}{}", eols[3]));
                head.push_str(&format!("Host: a.example{}", eols[4]));
                head.push_str(&format!("X-Note:Content-Length: 4{}", eols[5]));
                let mut body = Vec::new();
                let mut ambiguous = false;
                match framing {
                    Framing::None => {}
                    Framing::Length(b) => {
                        head.push_str(&format!("{cl}: {}{}", b.len(), eols[6]));
                        body = b;
                    }
                    Framing::Chunked(b) => {
                        head.push_str(&format!("{te}:{tev}{}", eols[6]));
                        body = b;
                    }
                    Framing::Both(cl_first, b) => {
                        let cl_line = format!("{cl}: {}{}", b.len(), eols[6]);
                        let te_line = format!("{te}: {tev}{}", eols[7]);
                        if cl_first {
                            head.push_str(&cl_line);
                            head.push_str(&te_line);
                        } else {
                            head.push_str(&te_line);
                            head.push_str(&cl_line);
                        }
                        body = b;
                        ambiguous = true;
                    }
                }
                head.push_str(eols[0]);
                let mut bytes = head.into_bytes();
                bytes.extend_from_slice(&body);
                Generated {
                    bytes,
                    ambiguous,
                    tunnel,
                }
            })
    }

    /// The verdict the generator intends: the first ambiguous head, unless
    /// a tunnel came before it; and the heads counted up to where the
    /// tracker stops.
    fn truth(requests: &[Generated]) -> (Option<u64>, u64) {
        for (i, r) in requests.iter().enumerate() {
            if r.ambiguous {
                return (Some(i as u64), i as u64 + 1);
            }
            if r.tunnel {
                return (None, i as u64 + 1);
            }
        }
        (None, requests.len() as u64)
    }

    proptest! {
        #[test]
        fn verdicts_match_the_generator_and_not_the_split(
            requests in proptest::collection::vec(request(), 1..6),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let stream: Vec<u8> = requests.iter().flat_map(|r| r.bytes.iter().copied()).collect();
            // The generator's heads are ones httparse reads whole.
            for r in &requests {
                let mut headers = [httparse::EMPTY_HEADER; 16];
                let mut req = httparse::Request::new(&mut headers);
                prop_assert!(matches!(req.parse(&r.bytes), Ok(httparse::Status::Complete(_))));
            }
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            at.sort_unstable();
            let mut t = Tracker::new(CAP);
            let mut from = 0;
            for cut in at {
                t.feed(&stream[from..cut]);
                from = cut;
            }
            t.feed(&stream[from..]);
            let (verdict, heads) = truth(&requests);
            prop_assert_eq!(t.first_ambiguous(), verdict);
            prop_assert_eq!(t.heads(), heads);
            prop_assert_eq!(t.tracking(), verdict.is_none() && !requests.iter().any(|r| r.tunnel));
        }

        #[test]
        fn generated_chunked_bodies_are_strictly_valid(body in chunked_body()) {
            prop_assert!(crate::framing::chunked_body_ok(&body));
        }

        #[test]
        fn any_bytes_in_any_pieces_give_one_verdict(
            stream in proptest::collection::vec(any::<u8>(), 0..300),
            cut in any::<prop::sample::Index>(),
        ) {
            let (verdict, heads, tracking) = run(&stream);
            let cut = cut.index(stream.len() + 1);
            let mut t = Tracker::new(CAP);
            t.feed(&stream[..cut]);
            t.feed(&stream[cut..]);
            prop_assert_eq!((t.first_ambiguous(), t.heads(), t.tracking()), (verdict, heads, tracking));
        }
    }
}
