//! Reading the server name out of a TLS ClientHello without terminating TLS.
//!
//! A small parser rather than `rustls::server::Acceptor`: the ingress only needs the
//! `server_name` extension, must accept whatever ClientHello the destination sidecar would
//! (the ingress is not the TLS endpoint, so it should not impose its own TLS library's
//! opinions), must tell "not yet complete" from "never going to be valid" on partial input,
//! and must never panic whatever the peer sends: every access below is bounds-checked
//! through [`Reader`].
//!
//! A ClientHello may span several TLS records (RFC 8446 §5.1 allows fragmenting handshake
//! messages); the fragments are reassembled only in that (rare) case.

use std::borrow::Cow;

/// TLS record content type `handshake`.
const CONTENT_HANDSHAKE: u8 = 22;
/// Handshake message type `client_hello`.
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
/// Extension type `server_name` (RFC 6066).
const EXT_SERVER_NAME: u16 = 0;
/// Server name type `host_name`.
const NAME_TYPE_HOST: u8 = 0;
/// Largest record payload a TLS peer may send (RFC 8446 §5.1).
const MAX_RECORD: usize = 1 << 14;
/// The record header: type, version, length.
const RECORD_HEADER: usize = 5;

/// What the bytes received so far amount to.
#[derive(Debug, PartialEq, Eq)]
pub enum Hello<'a> {
    /// A complete, well-formed ClientHello, with its `host_name` server name if it sent one.
    Complete { sni: Option<Cow<'a, str>> },
    /// A valid beginning of a ClientHello: read more.
    Incomplete,
    /// The connection does not start with a TLS handshake record (plaintext, garbage).
    NotTls,
    /// A TLS handshake that is not a well-formed ClientHello.
    Malformed(&'static str),
    /// A ClientHello announcing more bytes than allowed.
    TooLarge,
}

/// Parses `buf`, everything read from the connection so far. A ClientHello whose handshake
/// message is longer than `max_hello` bytes is [`Hello::TooLarge`], so a peer cannot make the
/// ingress buffer without bound.
pub fn parse(buf: &[u8], max_hello: usize) -> Hello<'_> {
    // The first record alone says whether this is TLS at all, even from one or two bytes.
    match (buf.first(), buf.get(1)) {
        (Some(&t), _) if t != CONTENT_HANDSHAKE => return Hello::NotTls,
        (_, Some(&major)) if major != 3 => return Hello::NotTls,
        _ => {}
    }
    let mut records = Records { buf, pos: 0 };
    let first = match records.next_fragment() {
        Fragment::Data(f) => f,
        Fragment::Incomplete => return Hello::Incomplete,
        Fragment::Bad(why) => return Hello::Malformed(why),
    };
    // The handshake header: type (1), length (3).
    let mut header = Reader::new(first);
    let (Some(msg_type), Some(len)) = (header.u8(), header.u24()) else {
        // A first fragment shorter than the handshake header: legal but odd; reassemble.
        return reassemble(records, first, max_hello);
    };
    if msg_type != HANDSHAKE_CLIENT_HELLO {
        return Hello::Malformed("the first handshake message is not a ClientHello");
    }
    if len > max_hello {
        return Hello::TooLarge;
    }
    match first.get(4..4 + len) {
        Some(body) => client_hello(Cow::Borrowed(body)),
        None => reassemble(records, first, max_hello),
    }
}

/// The slow path: a ClientHello split over several records.
fn reassemble<'a>(mut records: Records<'a>, first: &'a [u8], max_hello: usize) -> Hello<'a> {
    let mut msg = first.to_vec();
    loop {
        let mut header = Reader::new(&msg);
        if let (Some(msg_type), Some(len)) = (header.u8(), header.u24()) {
            if msg_type != HANDSHAKE_CLIENT_HELLO {
                return Hello::Malformed("the first handshake message is not a ClientHello");
            }
            if len > max_hello {
                return Hello::TooLarge;
            }
            if msg.len() >= 4 + len {
                msg.truncate(4 + len);
                msg.drain(..4);
                return client_hello(Cow::Owned(msg));
            }
        }
        match records.next_fragment() {
            Fragment::Data(f) => msg.extend_from_slice(f),
            Fragment::Incomplete => return Hello::Incomplete,
            Fragment::Bad(why) => return Hello::Malformed(why),
        }
    }
}

enum Fragment<'a> {
    Data(&'a [u8]),
    Incomplete,
    Bad(&'static str),
}

/// Walks the TLS records of `buf`.
struct Records<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Records<'a> {
    fn next_fragment(&mut self) -> Fragment<'a> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let mut r = Reader::new(rest);
        let Some(content_type) = r.u8() else {
            return Fragment::Incomplete;
        };
        if content_type != CONTENT_HANDSHAKE {
            return Fragment::Bad("a non-handshake record before the ClientHello ended");
        }
        let Some(major) = r.u8() else {
            return Fragment::Incomplete;
        };
        if major != 3 {
            return Fragment::Bad("unknown TLS record version");
        }
        let (Some(_minor), Some(len)) = (r.u8(), r.u16()) else {
            return Fragment::Incomplete;
        };
        let len = usize::from(len);
        if len == 0 {
            return Fragment::Bad("an empty handshake record");
        }
        if len > MAX_RECORD {
            return Fragment::Bad("a TLS record longer than 16 KiB");
        }
        match rest.get(RECORD_HEADER..RECORD_HEADER + len) {
            Some(fragment) => {
                self.pos += RECORD_HEADER + len;
                Fragment::Data(fragment)
            }
            None => Fragment::Incomplete,
        }
    }
}

/// Parses a ClientHello body (after the handshake header) down to its server name.
fn client_hello<'a>(body: Cow<'a, [u8]>) -> Hello<'a> {
    match body {
        Cow::Borrowed(b) => match server_name(b) {
            Ok(sni) => Hello::Complete {
                sni: sni.map(Cow::Borrowed),
            },
            Err(why) => Hello::Malformed(why),
        },
        Cow::Owned(b) => match server_name(&b) {
            Ok(sni) => Hello::Complete {
                sni: sni.map(|s| Cow::Owned(s.to_owned())),
            },
            Err(why) => Hello::Malformed(why),
        },
    }
}

/// The `host_name` of the `server_name` extension, if the ClientHello has one.
fn server_name(body: &[u8]) -> Result<Option<&str>, &'static str> {
    const TRUNCATED: &str = "a truncated ClientHello";
    let mut r = Reader::new(body);
    r.skip(2 + 32).ok_or(TRUNCATED)?; // legacy_version, random
    let session_id = r.vec8().ok_or(TRUNCATED)?;
    if session_id.len() > 32 {
        return Err("a ClientHello session id longer than 32 bytes");
    }
    let suites = r.vec16().ok_or(TRUNCATED)?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err("a ClientHello with an invalid cipher suite list");
    }
    if r.vec8().ok_or(TRUNCATED)?.is_empty() {
        return Err("a ClientHello without compression methods");
    }
    if r.is_empty() {
        return Ok(None); // no extensions at all (TLS 1.2 and older may omit them)
    }
    let extensions = r.vec16().ok_or(TRUNCATED)?;
    if !r.is_empty() {
        return Err("bytes after the ClientHello extensions");
    }
    let mut exts = Reader::new(extensions);
    let mut found = None;
    while !exts.is_empty() {
        let ext_type = exts.u16().ok_or(TRUNCATED)?;
        let data = exts.vec16().ok_or(TRUNCATED)?;
        if ext_type != EXT_SERVER_NAME {
            continue;
        }
        if found.is_some() {
            return Err("two server_name extensions");
        }
        found = Some(host_name(data)?);
    }
    Ok(found.flatten())
}

/// The `host_name` entry of a `server_name` extension's list (RFC 6066 §3).
fn host_name(data: &[u8]) -> Result<Option<&str>, &'static str> {
    const BAD: &str = "a malformed server_name extension";
    let mut r = Reader::new(data);
    let list = r.vec16().ok_or(BAD)?;
    if !r.is_empty() {
        return Err(BAD);
    }
    let mut names = Reader::new(list);
    let mut host = None;
    while !names.is_empty() {
        let name_type = names.u8().ok_or(BAD)?;
        let name = names.vec16().ok_or(BAD)?;
        if name_type != NAME_TYPE_HOST {
            continue;
        }
        if host.is_some() {
            return Err("two host names in server_name");
        }
        let valid = !name.is_empty()
            && name
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !valid {
            return Err("a server name that is not a DNS name");
        }
        // ASCII checked just above.
        host = Some(std::str::from_utf8(name).map_err(|_| BAD)?);
    }
    Ok(host)
}

/// Bounds-checked big-endian reads; `None` past the end.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }

    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const MAX: usize = 64 * 1024;

    /// The first flight of a real rustls client: its ClientHello record(s).
    fn rustls_hello(sni: &str) -> Vec<u8> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(aerie_identity::verify::InsecureServerVerifier::new())
            .with_no_client_auth();
        let name = rustls_pki_types::ServerName::try_from(sni.to_owned()).unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out).unwrap();
        }
        out
    }

    fn sni(h: Hello<'_>) -> Option<String> {
        match h {
            Hello::Complete { sni } => sni.map(Cow::into_owned),
            other => panic!("expected a complete hello, got {other:?}"),
        }
    }

    #[test]
    fn reads_the_server_name_of_a_real_client_hello() {
        let hello = rustls_hello("backend.default.mesh");
        assert_eq!(
            sni(parse(&hello, MAX)).as_deref(),
            Some("backend.default.mesh")
        );
        // An IP address is never sent as SNI.
        let hello = rustls_hello("127.0.0.1");
        assert_eq!(sni(parse(&hello, MAX)), None);
    }

    #[test]
    fn every_prefix_is_incomplete_and_trailing_bytes_are_ignored() {
        let hello = rustls_hello("web.default.mesh");
        for n in 0..hello.len() {
            assert_eq!(parse(&hello[..n], MAX), Hello::Incomplete, "prefix of {n}");
        }
        let mut more = hello.clone();
        more.extend_from_slice(b"\x17\x03\x03\x00\x05early");
        assert_eq!(sni(parse(&more, MAX)).as_deref(), Some("web.default.mesh"));
    }

    /// Re-frames one handshake message into records of at most `size` bytes each.
    fn fragment(hello: &[u8], size: usize) -> Vec<u8> {
        let msg = &hello[RECORD_HEADER..];
        let mut out = Vec::new();
        for chunk in msg.chunks(size) {
            out.extend_from_slice(&[CONTENT_HANDSHAKE, 3, 1]);
            out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    #[test]
    fn a_client_hello_fragmented_over_records_is_reassembled() {
        let hello = rustls_hello("x--4d7953657276696365.default.mesh");
        for size in [1, 2, 3, 4, 5, 17, 100] {
            let framed = fragment(&hello, size);
            for n in 0..framed.len() {
                assert_eq!(parse(&framed[..n], MAX), Hello::Incomplete, "{size}/{n}");
            }
            assert_eq!(
                sni(parse(&framed, MAX)).as_deref(),
                Some("x--4d7953657276696365.default.mesh"),
                "records of {size}"
            );
        }
    }

    #[test]
    fn plaintext_and_garbage_are_not_tls() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n", MAX), Hello::NotTls);
        assert_eq!(parse(b"\x16", MAX), Hello::Incomplete);
        assert_eq!(parse(b"\x16\x02", MAX), Hello::NotTls);
        assert_eq!(parse(b"\x80\x2e\x01\x03\x01", MAX), Hello::NotTls); // SSLv2 hello
        assert_eq!(parse(b"\x00", MAX), Hello::NotTls);
    }

    #[test]
    fn malformed_handshakes_are_refused() {
        let hello = rustls_hello("a.b.mesh");
        // Not a ClientHello (ServerHello type).
        let mut h = hello.clone();
        h[RECORD_HEADER] = 2;
        assert!(matches!(parse(&h, MAX), Hello::Malformed(_)));
        // Bigger than allowed, whole or fragmented.
        assert_eq!(parse(&hello, 16), Hello::TooLarge);
        assert_eq!(parse(&fragment(&hello, 2)[..14], 16), Hello::TooLarge);
        // An empty record, an over-long record, an alert record in the middle.
        assert!(matches!(
            parse(b"\x16\x03\x01\x00\x00", MAX),
            Hello::Malformed(_)
        ));
        assert!(matches!(
            parse(b"\x16\x03\x01\x40\x01", MAX),
            Hello::Malformed(_)
        ));
        let mut h = fragment(&hello, 10);
        h.truncate(15);
        h.extend_from_slice(b"\x15\x03\x03\x00\x02\x02\x28");
        assert!(matches!(parse(&h, MAX), Hello::Malformed(_)));
        // A handshake length that does not match its content: the body runs short.
        let body = [HANDSHAKE_CLIENT_HELLO, 0, 0, 3, 3, 3, 0];
        let mut rec = vec![CONTENT_HANDSHAKE, 3, 1, 0, body.len() as u8];
        rec.extend_from_slice(&body);
        assert!(matches!(parse(&rec, MAX), Hello::Malformed(_)));
    }

    /// A minimal ClientHello with the given extensions block (`None`: none at all).
    fn synthetic(extensions: Option<&[u8]>) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend_from_slice(&[0; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one suite
        body.extend_from_slice(&[1, 0]); // null compression
        if let Some(ext) = extensions {
            body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
            body.extend_from_slice(ext);
        }
        let mut msg = vec![HANDSHAKE_CLIENT_HELLO, 0];
        msg.extend_from_slice(&(body.len() as u16).to_be_bytes());
        msg.extend_from_slice(&body);
        let mut rec = vec![CONTENT_HANDSHAKE, 3, 1];
        rec.extend_from_slice(&(msg.len() as u16).to_be_bytes());
        rec.extend_from_slice(&msg);
        rec
    }

    fn sni_ext(entries: &[(u8, &[u8])]) -> Vec<u8> {
        let mut list = Vec::new();
        for (t, name) in entries {
            list.push(*t);
            list.extend_from_slice(&(name.len() as u16).to_be_bytes());
            list.extend_from_slice(name);
        }
        let mut data = (list.len() as u16).to_be_bytes().to_vec();
        data.extend_from_slice(&list);
        let mut ext = EXT_SERVER_NAME.to_be_bytes().to_vec();
        ext.extend_from_slice(&(data.len() as u16).to_be_bytes());
        ext.extend_from_slice(&data);
        ext
    }

    #[test]
    fn server_name_extension_edge_cases() {
        assert_eq!(sni(parse(&synthetic(None), MAX)), None);
        assert_eq!(sni(parse(&synthetic(Some(&[])), MAX)), None);
        let one = sni_ext(&[(0, b"web.default.mesh")]);
        assert_eq!(
            sni(parse(&synthetic(Some(&one)), MAX)).as_deref(),
            Some("web.default.mesh")
        );
        // Unknown name types are skipped.
        let other_type = sni_ext(&[(7, b"\xff\xfe"), (0, b"web.default.mesh")]);
        assert_eq!(
            sni(parse(&synthetic(Some(&other_type)), MAX)).as_deref(),
            Some("web.default.mesh")
        );
        for bad in [
            sni_ext(&[(0, b"")]),
            sni_ext(&[(0, b"a b")]),
            sni_ext(&[(0, "é.mesh".as_bytes())]),
            sni_ext(&[(0, b"a.mesh"), (0, b"b.mesh")]),
            [one.clone(), one.clone()].concat(),
            one[..one.len() - 1].to_vec(),
        ] {
            assert!(
                matches!(parse(&synthetic(Some(&bad)), MAX), Hello::Malformed(_)),
                "{bad:?}"
            );
        }
    }

    /// A small deterministic generator: the tests stay reproducible without a seed file.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn never_panics_on_random_or_mutated_input() {
        let hello = rustls_hello("backend.default.mesh");
        let framed = fragment(&hello, 7);
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for round in 0..20_000 {
            let base = if round % 2 == 0 { &hello } else { &framed };
            let mut input = base.clone();
            // Flip a few bytes, then cut somewhere.
            for _ in 0..(xorshift(&mut state) % 4 + 1) {
                let i = (xorshift(&mut state) as usize) % input.len();
                input[i] = xorshift(&mut state) as u8;
            }
            let cut = (xorshift(&mut state) as usize) % (input.len() + 1);
            let _ = parse(&input[..cut], MAX);
            let _ = parse(&input, 64);
            // Pure noise, starting like a handshake record half of the time.
            let len = (xorshift(&mut state) % 300) as usize;
            let mut noise: Vec<u8> = (0..len).map(|_| xorshift(&mut state) as u8).collect();
            if round % 2 == 0 && noise.len() > 2 {
                noise[0] = CONTENT_HANDSHAKE;
                noise[1] = 3;
            }
            let _ = parse(&noise, MAX);
        }
    }
}
