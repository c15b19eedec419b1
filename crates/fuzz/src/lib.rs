//! Fuzzing harnesses for what Aerie parses from untrusted peers, on stable Rust.
//!
//! No libFuzzer and no nightly: each [`Target`] *generates* its inputs with a deterministic,
//! seeded mutator ([`Rng`], [`mutate_bytes`], [`mutate_json`]) over a corpus of valid inputs,
//! structure-aware where that is cheap (a resource is mutated as a JSON tree and written back
//! as YAML or JSON, a token's claims are mutated and then signed with the right key, a CSR's
//! DER is mutated and wrapped back in PEM), so that most inputs get past the first check and
//! reach the code behind it. [`run`] feeds each input to the target under
//! [`std::panic::catch_unwind`]: a panic is a finding, reported with the input, which is
//! saved (hex) in the crash folder for [`replay`].
//!
//! An input is the exact bytes a target's [`Target::run`] consumes: a saved crash replays
//! without the generator. Targets with several surfaces pick one from the first byte.
//!
//! `bench/fuzz.sh` runs every target a million times in release; `cargo test -p aerie-fuzz`
//! runs each a few thousand times so the harnesses cannot rot.

pub mod targets;

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

/// One fuzzed surface.
pub trait Target {
    /// Short name, used on the command line and in crash file names.
    fn name(&self) -> &'static str;
    /// The next input, from the seed corpus and `rng`.
    fn generate(&mut self, rng: &mut Rng) -> Vec<u8>;
    /// Feeds one input to the code under test. Any panic is a bug (in the code under test,
    /// or an invariant the target checks with `assert!`).
    fn run(&mut self, input: &[u8]);
}

/// splitmix64: small, fast, deterministic for a given seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len()))
    }
}

/// Bytes that often matter to parsers.
const INTERESTING_BYTES: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, b'\n', b'\r', b' ', b'\t', b':', b',', b'.', b'/', b'"', b'\'', b'{',
    b'}', b'[', b']', b'-', b'#', b'&', b'*', b'%', b'=', b'0', b'9', b'a',
];

/// 1 to 8 byte-level mutations of `data`: bit flips, interesting bytes, insertions and
/// deletions of runs, duplicated chunks, dictionary tokens and splices from `other`.
pub fn mutate_bytes(data: &mut Vec<u8>, rng: &mut Rng, dict: &[&[u8]], other: &[u8]) {
    let rounds = 1 + rng.below(8);
    for _ in 0..rounds {
        let len = data.len();
        let pos = rng.below(len + 1);
        match rng.below(11) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())];
            }
            2 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.next_u64() as u8;
            }
            3 => data.insert(pos, rng.next_u64() as u8),
            4 if len > 0 => {
                let n = 1 + rng.below(16.min(len - pos.min(len - 1)));
                let start = pos.min(len - 1);
                data.drain(start..(start + n).min(len));
            }
            5 if len > 0 => {
                // Duplicate a chunk somewhere else.
                let start = rng.below(len);
                let n = 1 + rng.below(32.min(len - start));
                let chunk = data[start..start + n].to_vec();
                let at = rng.below(data.len() + 1);
                data.splice(at..at, chunk);
            }
            6 | 7 if !dict.is_empty() => {
                let token = dict[rng.below(dict.len())];
                if rng.chance(50) || len == 0 {
                    data.splice(pos..pos, token.iter().copied());
                } else {
                    let end = (pos + token.len()).min(len);
                    data.splice(pos..end, token.iter().copied());
                }
            }
            8 if !other.is_empty() => {
                // Splice: our head, the other input's tail.
                let cut = rng.below(other.len());
                data.truncate(pos);
                data.extend_from_slice(&other[cut..]);
            }
            9 if len > 0 => data.truncate(pos),
            10 if len >= 2 => {
                // Set a 16- or 32-bit big-endian field to an edge value (length fields).
                let width = if rng.chance(50) { 2 } else { 4 };
                let i = rng.below(len.saturating_sub(width - 1).max(1));
                let value: u32 = *rng
                    .pick(&[
                        0,
                        1,
                        0x7f,
                        0x80,
                        0xff,
                        0x100,
                        0x3fff,
                        0x4000,
                        0xffff,
                        u32::MAX,
                    ])
                    .unwrap_or(&0);
                let bytes = value.to_be_bytes();
                for (k, b) in bytes[4 - width..].iter().enumerate() {
                    if let Some(slot) = data.get_mut(i + k) {
                        *slot = *b;
                    }
                }
            }
            _ => {
                let i = rng.below(len.max(1));
                if let Some(b) = data.get_mut(i) {
                    *b = b.wrapping_add(1 + rng.below(4) as u8);
                }
            }
        }
    }
}

/// Scalars that break validators: Go/Kuma durations at and past their limits, numbers at
/// the edges of every integer type, odd strings.
const INTERESTING_STRINGS: &[&str] = &[
    "",
    "0",
    "-1",
    "1",
    "1s",
    "-1s",
    "0s",
    "10y",
    "292y",
    "293y",
    "99999999999y",
    "500000000000y",
    "18446744073709551615s",
    "2562047h47m16.854775807s",
    "2562047h47m16.854775808s",
    "9223372036854775807ns",
    "-9223372036854775808ns",
    "1.5h",
    ".5s",
    "1e400",
    "NaN",
    "default",
    "*",
    "Mesh",
    "MeshService",
    "MeshSubset",
    "Dataplane",
    "kuma.io/service",
    "kuma.io/zone",
    "STRICT",
    "PERMISSIVE",
    "builtin",
    "provided",
    "http",
    "http2",
    "grpc",
    "tcp",
    "Allow",
    "Deny",
    "AllowWithShadowDeny",
    "127.0.0.1",
    "::1",
    "0.0.0.0",
    "10.0.0.1:99999",
    "spiffe://default/web",
    "a.b",
    "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    "\u{0}",
    "\u{feff}",
    "\u{10ffff}",
    "é",
    "a\nb",
    "{{ var }}",
    "name: x",
    "65535",
    "65536",
];

/// A JSON scalar or small container from the interesting values.
fn interesting_value(rng: &mut Rng) -> serde_json::Value {
    use serde_json::Value;
    match rng.below(12) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(50)),
        2 => Value::from(
            *rng.pick(&[
                0i64,
                -1,
                1,
                2,
                255,
                256,
                65535,
                65536,
                i64::MAX,
                i64::MIN,
                i64::from(u32::MAX),
            ])
            .unwrap_or(&0),
        ),
        3 => Value::from(u64::MAX),
        4 => serde_json::Number::from_f64(
            *rng.pick(&[0.5, -0.0, 1e300, -1e300, 3.9]).unwrap_or(&0.5),
        )
        .map_or(Value::Null, Value::Number),
        5 => Value::Array(Vec::new()),
        6 => Value::Object(serde_json::Map::new()),
        7 => Value::String("x".repeat(1 + rng.below(300))),
        _ => Value::String((*rng.pick(INTERESTING_STRINGS).unwrap_or(&"")).to_string()),
    }
}

/// JSON pointers of every node of `v` (depth-first, capped).
fn pointers(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
    if out.len() > 400 {
        return;
    }
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                pointers(child, p, out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// 1 to 4 structural mutations of a JSON tree: replace a node with an interesting value
/// (or a copy of another node), delete or rename a member, duplicate an array element, or
/// mutate a string's bytes. `keys` are member names worth adding.
pub fn mutate_json(v: &mut serde_json::Value, rng: &mut Rng, keys: &[&str]) {
    use serde_json::Value;
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let mut all = Vec::new();
        pointers(v, String::new(), &mut all);
        let Some(target) = rng.pick(&all).cloned() else {
            return;
        };
        let donor = rng.pick(&all).and_then(|p| v.pointer(p)).cloned();
        let op = rng.below(10);
        let Some(node) = v.pointer_mut(&target) else {
            continue;
        };
        match (op, node) {
            (0..=2, node) => *node = interesting_value(rng),
            (3, node) => {
                if let Some(d) = donor {
                    *node = d;
                }
            }
            (4, Value::Object(map)) if !map.is_empty() => {
                let k = map
                    .keys()
                    .nth(rng.below(map.len()))
                    .cloned()
                    .unwrap_or_default();
                map.remove(&k);
            }
            (5, Value::Object(map)) => {
                let key = rng.pick(keys).copied().unwrap_or("x").to_string();
                map.insert(key, interesting_value(rng));
            }
            (6, Value::Object(map)) if !map.is_empty() => {
                let k = map
                    .keys()
                    .nth(rng.below(map.len()))
                    .cloned()
                    .unwrap_or_default();
                if let Some(val) = map.remove(&k) {
                    let key = rng.pick(keys).copied().unwrap_or("x").to_string();
                    map.insert(key, val);
                }
            }
            (7, Value::Array(items)) if !items.is_empty() => {
                let i = rng.below(items.len());
                let copy = items[i].clone();
                items.insert(i, copy);
            }
            (8, Value::Array(items)) if !items.is_empty() => {
                let i = rng.below(items.len());
                items.remove(i);
            }
            (_, Value::String(s)) => {
                let mut bytes = std::mem::take(s).into_bytes();
                mutate_bytes(&mut bytes, rng, &[], &[]);
                *s = String::from_utf8_lossy(&bytes).into_owned();
            }
            (_, node) => *node = interesting_value(rng),
        }
    }
}

/// An input made of length-prefixed fields (u16 big-endian lengths), so a target whose
/// surface takes several values keeps them in one replayable byte string.
pub fn pack(fields: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        let len = u16::try_from(f.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&f[..usize::from(len)]);
    }
    out
}

/// The inverse of [`pack`], total: missing fields are empty, a short last field is cut.
pub fn unpack<const N: usize>(mut input: &[u8]) -> [&[u8]; N] {
    let mut out: [&[u8]; N] = [&[]; N];
    for slot in &mut out {
        let [hi, lo, rest @ ..] = input else {
            break;
        };
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(rest.len());
        *slot = &rest[..len];
        input = &rest[len..];
    }
    out
}

/// The outcome of running one target.
#[derive(Debug, Clone)]
pub struct Report {
    pub target: &'static str,
    pub inputs: u64,
    pub panics: u64,
    pub elapsed: Duration,
    /// Saved crash inputs: distinct ones, at most [`MAX_SAVED_CRASHES`] per run.
    pub crashes: Vec<PathBuf>,
    /// The first panic's message, if any.
    pub first_panic: Option<String>,
}

impl Report {
    pub fn per_second(&self) -> f64 {
        self.inputs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// How many crash inputs one run saves.
pub const MAX_SAVED_CRASHES: usize = 20;

thread_local! {
    /// Whether this thread is inside [`run`]: its panics are recorded, not printed.
    static FUZZING: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once) a panic hook that records panics of fuzzing threads quietly and passes
/// every other panic to the hook that was there before.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if FUZZING.with(Cell::get) {
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                let msg = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".into());
                LAST_PANIC.with(|l| *l.borrow_mut() = Some(format!("{msg}{at}")));
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs one input; `Err(message)` if it panicked.
pub fn run_one(target: &mut dyn Target, input: &[u8]) -> Result<(), String> {
    install_panic_hook();
    FUZZING.with(|f| f.set(true));
    let result = catch_unwind(AssertUnwindSafe(|| target.run(input)));
    FUZZING.with(|f| f.set(false));
    result.map_err(|_| {
        LAST_PANIC
            .with(|l| l.borrow_mut().take())
            .unwrap_or_else(|| "panic".into())
    })
}

/// Lower-case hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses hex, ignoring whitespace; `None` on anything else.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect()
}

fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Feeds `inputs` generated inputs to `target` (mutator seeded with `seed`). Each panic is
/// counted; the first [`MAX_SAVED_CRASHES`] inputs that panicked are written to
/// `crash_dir/<target>-<hash>.hex` (when given) and reported on stderr.
pub fn run(target: &mut dyn Target, inputs: u64, seed: u64, crash_dir: Option<&Path>) -> Report {
    let mut rng = Rng::new(seed ^ fnv64(target.name().as_bytes()));
    let mut report = Report {
        target: target.name(),
        inputs: 0,
        panics: 0,
        elapsed: Duration::ZERO,
        crashes: Vec::new(),
        first_panic: None,
    };
    let mut seen = std::collections::HashSet::new();
    let start = Instant::now();
    for _ in 0..inputs {
        let input = target.generate(&mut rng);
        report.inputs += 1;
        let Err(msg) = run_one(target, &input) else {
            continue;
        };
        report.panics += 1;
        if report.first_panic.is_none() {
            report.first_panic = Some(msg.clone());
        }
        // Each distinct input once, up to the cap.
        if seen.len() < MAX_SAVED_CRASHES && seen.insert(fnv64(&input)) {
            eprintln!(
                "{}: panic: {msg}\n  input ({} bytes): {}",
                target.name(),
                input.len(),
                to_hex(&input)
            );
            if let Some(dir) = crash_dir {
                let path = dir.join(format!("{}-{:016x}.hex", target.name(), fnv64(&input)));
                let saved = std::fs::create_dir_all(dir)
                    .and_then(|()| std::fs::write(&path, to_hex(&input) + "\n"));
                match saved {
                    Ok(()) => report.crashes.push(path),
                    Err(e) => eprintln!("cannot save {}: {e}", path.display()),
                }
            }
        }
    }
    report.elapsed = start.elapsed();
    report
}

/// Runs one saved input (hex text) again.
pub fn replay(target: &mut dyn Target, hex: &str) -> Result<(), String> {
    let input = from_hex(hex).ok_or_else(|| "not hex".to_string())?;
    run_one(target, &input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_unpack_round_trip_and_are_total() {
        let packed = pack(&[b"ab", b"", b"cde"]);
        assert_eq!(unpack::<3>(&packed), [&b"ab"[..], b"", b"cde"]);
        assert_eq!(unpack::<4>(&packed)[3], b"");
        assert_eq!(unpack::<2>(&[0xff, 0xff, 1])[0], &[1][..]);
        assert_eq!(unpack::<2>(&[7]), [&b""[..], b""]);
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(from_hex(&to_hex(&[0, 1, 0xfe])), Some(vec![0, 1, 0xfe]));
        assert_eq!(from_hex("0g"), None);
        assert_eq!(from_hex("abc"), None);
    }

    #[test]
    fn mutators_are_deterministic_and_total() {
        let run = |seed| {
            let mut rng = Rng::new(seed);
            let mut data = b"type: Mesh\nname: default\n".to_vec();
            let mut v = serde_json::json!({"a": [1, {"b": "c"}], "d": "10s"});
            for _ in 0..2000 {
                mutate_bytes(&mut data, &mut rng, &[b"xyz"], b"other");
                mutate_json(&mut v, &mut rng, &["k"]);
                if data.len() > 4096 {
                    data.truncate(64);
                }
            }
            (data, v)
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7).0, run(8).0);
    }

    struct Panicky;
    impl Target for Panicky {
        fn name(&self) -> &'static str {
            "panicky"
        }
        fn generate(&mut self, rng: &mut Rng) -> Vec<u8> {
            vec![rng.below(4) as u8]
        }
        fn run(&mut self, input: &[u8]) {
            assert!(input != [3], "three");
        }
    }

    #[test]
    fn panics_are_counted_and_saved() {
        let dir = std::env::temp_dir().join(format!("aerie-fuzz-test-{}", std::process::id()));
        let report = run(&mut Panicky, 200, 1, Some(&dir));
        assert_eq!(report.inputs, 200);
        assert!(report.panics > 10, "{report:?}");
        assert_eq!(report.crashes.len(), 1, "one distinct input");
        let saved = std::fs::read_to_string(&report.crashes[0]).unwrap();
        assert_eq!(saved.trim(), "03");
        assert!(replay(&mut Panicky, &saved).unwrap_err().contains("three"));
        assert!(replay(&mut Panicky, "02").is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
