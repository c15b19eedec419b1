//! One module per fuzzed surface. Each target's seeds are valid inputs (tests check that they
//! are accepted), so mutations start from what the code under test accepts.

pub mod cert;
pub mod hello;
pub mod http;
pub mod kds;
pub mod resources;
pub mod seeds;
pub mod token;
pub mod xds;

use crate::Target;

/// Every target's name, in the order `bench/fuzz.sh` runs them.
pub const NAMES: [&str; 7] = ["resources", "http", "hello", "xds", "kds", "cert", "token"];

/// A fresh target by name.
pub fn by_name(name: &str) -> Option<Box<dyn Target>> {
    Some(match name {
        "resources" => Box::new(resources::Resources::new()),
        "http" => Box::new(http::HttpFront::new()),
        "hello" => Box::new(hello::ClientHello::new()),
        "xds" => Box::new(xds::Xds::new()),
        "kds" => Box::new(kds::Kds::new()),
        "cert" => Box::new(cert::Cert::new()),
        "token" => Box::new(token::Token::new()),
        _ => return None,
    })
}

/// A current-thread runtime for targets that call async code.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        // Without a runtime no async target can run at all: a harness failure, not a finding.
        Err(e) => panic!("cannot start a tokio runtime: {e}"),
    }
}
