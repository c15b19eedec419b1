//! Access-log format strings: Envoy's command operators (`%RESPONSE_CODE%`,
//! `%REQ(USER-AGENT)%`, `%START_TIME(%s)%`, `%REQ(X-REQUEST-ID):8%`) and Kuma's own
//! (`%KUMA_SOURCE_SERVICE%`...), parsed once per config into [`Segment`]s the proxy renders
//! per request or connection. Kuma's default formats for HTTP and TCP listeners are here.

use serde::{Deserialize, Serialize};

/// Kuma 2.14's default format for HTTP listeners (`plugin/xds/configurer.go`).
pub const DEFAULT_HTTP_FORMAT: &str = r#"[%START_TIME%] %KUMA_MESH% "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-B3-TRACEID?X-DATADOG-TRACEID)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%KUMA_SOURCE_SERVICE%" "%KUMA_DESTINATION_SERVICE%" "%KUMA_SOURCE_ADDRESS_WITHOUT_PORT%" "%UPSTREAM_HOST%""#;

/// Kuma 2.14's default format for TCP listeners.
pub const DEFAULT_TCP_FORMAT: &str = "[%START_TIME%] %RESPONSE_FLAGS% %KUMA_MESH% %KUMA_SOURCE_ADDRESS_WITHOUT_PORT%(%KUMA_SOURCE_SERVICE%)->%UPSTREAM_HOST%(%KUMA_DESTINATION_SERVICE%) took %DURATION%ms, sent %BYTES_SENT% bytes, received: %BYTES_RECEIVED% bytes";

/// A piece of a format string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Segment {
    Text(String),
    Op(Operator),
}

/// One command operator, with its optional truncation (`:N`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operator {
    pub op: Op,
    pub max_len: Option<usize>,
}

/// The operators kuma-dp renders. Others are kept (`Unknown`) and rendered as `-`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `START_TIME`, optionally with a strftime-like format (`%Y %m %d %H %M %S %s %z
    /// %E3S %E6S %f`).
    StartTime(Option<String>),
    /// A request header (the first of the names that is present); `:METHOD`, `:PATH`,
    /// `:AUTHORITY`, `:SCHEME` name the request line.
    Req(Vec<String>),
    /// A response header, the same way.
    Resp(Vec<String>),
    ResponseCode,
    ResponseFlags,
    ResponseCodeDetails,
    Protocol,
    BytesReceived,
    BytesSent,
    /// Milliseconds from the first byte to the last, or the connection's life.
    Duration,
    /// Milliseconds until the response headers were received.
    ResponseDuration,
    UpstreamHost,
    UpstreamCluster,
    DownstreamRemoteAddress,
    DownstreamRemoteAddressWithoutPort,
    DownstreamLocalAddress,
    DownstreamLocalAddressWithoutPort,
    RequestedServerName,
    DownstreamPeerUriSan,
    Hostname,
    KumaMesh,
    KumaZone,
    KumaSourceService,
    KumaDestinationService,
    KumaSourceAddress,
    KumaSourceAddressWithoutPort,
    KumaTrafficDirection,
    KumaWorkload,
    Unknown(String),
}

impl Op {
    fn of(name: &str, arg: Option<&str>) -> Op {
        let headers = |a: Option<&str>| -> Vec<String> {
            a.unwrap_or("")
                .split('?')
                .filter(|h| !h.is_empty())
                .map(str::to_ascii_lowercase)
                .collect()
        };
        match (name, arg) {
            ("START_TIME", a) => Op::StartTime(a.map(str::to_string)),
            ("REQ", Some(a)) => Op::Req(headers(Some(a))),
            ("RESP", Some(a)) => Op::Resp(headers(Some(a))),
            ("RESPONSE_CODE", None) => Op::ResponseCode,
            ("RESPONSE_FLAGS", None) => Op::ResponseFlags,
            ("RESPONSE_CODE_DETAILS", None) => Op::ResponseCodeDetails,
            ("PROTOCOL", None) => Op::Protocol,
            ("BYTES_RECEIVED", None) => Op::BytesReceived,
            ("BYTES_SENT", None) => Op::BytesSent,
            ("DURATION", None) => Op::Duration,
            ("RESPONSE_DURATION", None) => Op::ResponseDuration,
            ("UPSTREAM_HOST", None) => Op::UpstreamHost,
            ("UPSTREAM_CLUSTER", None) => Op::UpstreamCluster,
            ("DOWNSTREAM_REMOTE_ADDRESS" | "DOWNSTREAM_DIRECT_REMOTE_ADDRESS", None) => {
                Op::DownstreamRemoteAddress
            }
            (
                "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT"
                | "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT",
                None,
            ) => Op::DownstreamRemoteAddressWithoutPort,
            ("DOWNSTREAM_LOCAL_ADDRESS", None) => Op::DownstreamLocalAddress,
            ("DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT", None) => {
                Op::DownstreamLocalAddressWithoutPort
            }
            ("REQUESTED_SERVER_NAME", None) => Op::RequestedServerName,
            ("DOWNSTREAM_PEER_URI_SAN", None) => Op::DownstreamPeerUriSan,
            ("HOSTNAME", None) => Op::Hostname,
            ("KUMA_MESH", None) => Op::KumaMesh,
            ("KUMA_ZONE", None) => Op::KumaZone,
            ("KUMA_SOURCE_SERVICE", None) => Op::KumaSourceService,
            ("KUMA_DESTINATION_SERVICE", None) => Op::KumaDestinationService,
            ("KUMA_SOURCE_ADDRESS", None) => Op::KumaSourceAddress,
            ("KUMA_SOURCE_ADDRESS_WITHOUT_PORT", None) => Op::KumaSourceAddressWithoutPort,
            ("KUMA_TRAFFIC_DIRECTION", None) => Op::KumaTrafficDirection,
            ("KUMA_WORKLOAD", None) => Op::KumaWorkload,
            (name, None) => Op::Unknown(name.to_string()),
            (name, Some(a)) => Op::Unknown(format!("{name}({a})")),
        }
    }
}

/// Parses a format string. `%%` is a literal `%`; a `%` that does not start an operator
/// (`%NAME%`, `%NAME(arg)%`, either with `:N`) is kept as text.
pub fn parse(text: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('%') {
        literal.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('%') {
            literal.push('%');
            rest = tail;
            continue;
        }
        match operator(after) {
            Some((op, used)) => {
                if !literal.is_empty() {
                    out.push(Segment::Text(std::mem::take(&mut literal)));
                }
                out.push(Segment::Op(op));
                rest = &after[used..];
            }
            None => {
                literal.push('%');
                rest = after;
            }
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        out.push(Segment::Text(literal));
    }
    out
}

/// `NAME[(arg)][:N]%` at the start of `s`: the operator and the bytes it used.
fn operator(s: &str) -> Option<(Operator, usize)> {
    let name_len = s
        .bytes()
        .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
        .count();
    if name_len == 0 {
        return None;
    }
    let name = &s[..name_len];
    let mut i = name_len;
    let mut arg = None;
    if s[i..].starts_with('(') {
        let close = s[i..].find(')')?;
        arg = Some(&s[i + 1..i + close]);
        i += close + 1;
    }
    let mut max_len = None;
    if let Some(r) = s[i..].strip_prefix(':') {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        max_len = r[..digits].parse().ok();
        i += 1 + digits;
    }
    if !s[i..].starts_with('%') {
        return None;
    }
    Some((
        Operator {
            op: Op::of(name, arg),
            max_len,
        },
        i + 1,
    ))
}

/// The operators of `text` kuma-dp does not render (`-` in their place), for warnings.
pub fn unknown_operators(text: &str) -> Vec<String> {
    parse(text)
        .into_iter()
        .filter_map(|s| match s {
            Segment::Op(Operator {
                op: Op::Unknown(name),
                ..
            }) => Some(name),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(op: Op) -> Segment {
        Segment::Op(Operator { op, max_len: None })
    }

    #[test]
    fn operators_arguments_and_truncation() {
        assert_eq!(
            parse("[%START_TIME%] %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %RESPONSE_CODE%"),
            vec![
                Segment::Text("[".into()),
                op(Op::StartTime(None)),
                Segment::Text("] ".into()),
                op(Op::Req(vec![
                    "x-envoy-original-path".into(),
                    ":path".into()
                ])),
                Segment::Text(" ".into()),
                op(Op::ResponseCode),
            ]
        );
        assert_eq!(
            parse("%REQ(X-REQUEST-ID):8%"),
            vec![Segment::Op(Operator {
                op: Op::Req(vec!["x-request-id".into()]),
                max_len: Some(8)
            })]
        );
        assert_eq!(
            parse("%START_TIME(%s)%"),
            vec![op(Op::StartTime(Some("%s".into())))]
        );
    }

    #[test]
    fn percent_signs_that_start_no_operator_stay_text() {
        assert_eq!(parse("100%% done"), vec![Segment::Text("100% done".into())]);
        assert_eq!(parse("50% off"), vec![Segment::Text("50% off".into())]);
        assert_eq!(parse("%lower%"), vec![Segment::Text("%lower%".into())]);
        assert_eq!(parse("%REQ(X%"), vec![Segment::Text("%REQ(X%".into())]);
        assert_eq!(parse(""), Vec::<Segment>::new());
    }

    #[test]
    fn unknown_operators_are_named() {
        assert_eq!(
            unknown_operators("%RESPONSE_CODE% %NOT_AN_OP% %FILTER_STATE(x)%"),
            vec!["NOT_AN_OP".to_string(), "FILTER_STATE(x)".to_string()]
        );
        assert!(unknown_operators(DEFAULT_HTTP_FORMAT).is_empty());
        assert!(unknown_operators(DEFAULT_TCP_FORMAT).is_empty());
    }
}
