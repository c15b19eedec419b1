//! Token verification: user, dataplane and zone tokens (JWT ES256) through
//! `aerie_identity::verify_token` and the control plane's `TokenIssuer` (key lookup by
//! `kid`, revocation lists). Structure-aware: a token's claims are mutated as JSON and then
//! *signed with the right key*, so they get past the signature and reach claim parsing; a
//! token's header or signature is mutated as bytes. Invariant: an accepted token has not
//! expired. The key is fixed (below), so a saved input replays.

use std::sync::Arc;

use aerie_core::{Meta, Resource, Spec, spec::SecretSpec};
use aerie_cp::tokens::{
    KID, TokenIssuer, USER_TOKEN_SIGNING_KEY, ZONE_TOKEN_SIGNING_KEY, dataplane_signing_key_name,
};
use aerie_identity::{
    Claims, DataplaneClaims, SigningKey, UserClaims, ZoneClaims, sign_token, verify_token,
};
use aerie_store::SharedStore;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::{Rng, Target, mutate_bytes, mutate_json};

/// A P-256 key made for the fuzzer only (`openssl genpkey -algorithm EC -pkeyopt
/// ec_paramgen_curve:P-256`); it signs nothing else.
pub const FUZZ_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgrhDTky8JEWf7KRhq
VvkNx06CPYmMvUIR3BHop4nASuuhRANCAAQZDfoUH6GoKmkOM9DUfowJCP3MDqQ2
hRySYQ+HzebfKx5l7WUlK0rldliHdSJbJVtLu+PwAA1YgyBtULG255b1
-----END PRIVATE KEY-----
";

/// The clock of `verify_token` here; tokens are valid from 2023 to 2096.
const NOW: u64 = 1_800_000_000;

pub(crate) fn fuzz_key() -> SigningKey {
    match SigningKey::from_pkcs8_pem(FUZZ_KEY_PEM) {
        Ok(k) => k,
        Err(e) => panic!("the fuzzer's fixed key does not load: {e}"),
    }
}

/// The secret that stores `key` as `name` (a GlobalSecret without a mesh), as the control
/// plane stores its signing keys.
pub(crate) fn key_secret(key: &SigningKey, mesh: Option<&str>, name: &str) -> Resource {
    let spec = SecretSpec {
        data: STANDARD.encode(key.to_pkcs8_pem()),
    };
    Resource {
        meta: Meta {
            name: name.into(),
            mesh: mesh.map(str::to_string),
            ..Meta::default()
        },
        spec: if mesh.is_some() {
            Spec::Secret(spec)
        } else {
            Spec::GlobalSecret(spec)
        },
    }
}

/// Valid claims of each kind: user, dataplane, zone.
pub(crate) fn base_claims() -> [Value; 3] {
    let times = |mut v: Value| {
        if let Some(o) = v.as_object_mut() {
            o.insert("jti".into(), json!("2f3a6f0e-1c4b-4a4e-9d1e-0f0e0d0c0b0a"));
            o.insert("iat".into(), json!(1_700_000_000u64));
            o.insert("nbf".into(), json!(1_699_999_700u64));
            o.insert("exp".into(), json!(4_000_000_000u64));
        }
        v
    };
    [
        times(json!({"Name": "admin", "Groups": ["mesh-system:admin"]})),
        times(
            json!({"Name": "web-1", "Mesh": "default", "Tags": {"kuma.io/service": ["web"]}, "Type": "dataplane"}),
        ),
        times(json!({"Zone": "zone-1", "Scope": ["cp", "ingress"]})),
    ]
}

const TOKEN_TOKENS: &[&[u8]] = &[b".", b"=", b"+", b"/", b"-", b"_", b"eyJ", b"AAAA", b"\n"];

pub struct Token {
    key: SigningKey,
    claims: [Value; 3],
    valid: Vec<Vec<u8>>,
    rt: tokio::runtime::Runtime,
    issuer: TokenIssuer,
}

impl Token {
    pub fn new() -> Token {
        let key = fuzz_key();
        let claims = base_claims();
        let valid = claims
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let token = sign_token(&key, KID, c).ok()?;
                let mut input = vec![i as u8];
                input.extend_from_slice(token.as_bytes());
                Some(input)
            })
            .collect();
        let rt = super::runtime();
        let issuer = rt.block_on(async {
            let store: SharedStore = Arc::new(aerie_store::MemoryStore::new());
            for r in [
                super::xds::default_mesh(),
                key_secret(&key, None, USER_TOKEN_SIGNING_KEY),
                key_secret(&key, None, ZONE_TOKEN_SIGNING_KEY),
                key_secret(
                    &key,
                    Some("default"),
                    &dataplane_signing_key_name("default"),
                ),
            ] {
                if let Err(e) = store.create(r, "2026-12-05T00:00:00Z").await {
                    panic!("cannot prepare the store: {e}");
                }
            }
            match TokenIssuer::load_or_create(store).await {
                Ok(i) => i,
                Err(e) => panic!("cannot load the token issuer: {e:#}"),
            }
        });
        Token {
            key,
            claims,
            valid,
            rt,
            issuer,
        }
    }
}

impl Default for Token {
    fn default() -> Self {
        Self::new()
    }
}

impl Target for Token {
    fn name(&self) -> &'static str {
        "token"
    }

    fn generate(&mut self, rng: &mut Rng) -> Vec<u8> {
        let kind = rng.below(3);
        let mut input = vec![kind as u8];
        match rng.below(10) {
            // Claims mutated, then signed: reaches claim parsing.
            0..=3 => {
                let mut claims = self.claims[kind].clone();
                mutate_json(
                    &mut claims,
                    rng,
                    &[
                        "exp", "nbf", "iat", "jti", "Name", "Mesh", "Tags", "Type", "Zone",
                        "Scope", "Groups",
                    ],
                );
                let kid = if rng.chance(95) { KID } else { "2" };
                if let Ok(token) = sign_token(&self.key, kid, &claims) {
                    input.extend_from_slice(token.as_bytes());
                }
            }
            // Header mutated as JSON (the header is read before the signature is checked).
            4..=5 => {
                let mut header = json!({"alg": "ES256", "typ": "JWT", "kid": KID});
                mutate_json(
                    &mut header,
                    rng,
                    &["alg", "typ", "kid", "crit", "jku", "x5u"],
                );
                let valid = rng.pick(&self.valid).cloned().unwrap_or_default();
                let valid =
                    String::from_utf8_lossy(valid.get(1..).unwrap_or_default()).into_owned();
                let rest = valid.split_once('.').map_or("", |(_, r)| r);
                let header =
                    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap_or_default());
                input.extend_from_slice(format!("{header}.{rest}").as_bytes());
            }
            // Bytes mutated.
            _ => {
                let mut token = rng.pick(&self.valid).cloned().unwrap_or_default();
                let other = rng.pick(&self.valid).cloned().unwrap_or_default();
                mutate_bytes(&mut token, rng, TOKEN_TOKENS, &other);
                input.extend_from_slice(token.get(1..).unwrap_or_default());
            }
        }
        input
    }

    fn run(&mut self, input: &[u8]) {
        let Some((kind, token)) = input.split_first() else {
            return;
        };
        let token = String::from_utf8_lossy(token);
        let verifying = self.key.verifying_key();
        let lookup = |kid: &str| (kid == KID).then(|| verifying.clone());
        let expired = |exp: u64| panic!("an expired token (exp {exp}) was accepted");
        match kind % 3 {
            0 => {
                if let Ok(c) = verify_token::<Claims<UserClaims>>(&lookup, &token, NOW)
                    && c.registered.exp <= NOW
                {
                    expired(c.registered.exp);
                }
                let _ = self.rt.block_on(self.issuer.verify_user_token(&token));
            }
            1 => {
                if let Ok(c) = verify_token::<Claims<DataplaneClaims>>(&lookup, &token, NOW)
                    && c.registered.exp <= NOW
                {
                    expired(c.registered.exp);
                }
                let _ = self
                    .rt
                    .block_on(self.issuer.verify_dataplane_token("default", &token));
            }
            _ => {
                if let Ok(c) = verify_token::<Claims<ZoneClaims>>(&lookup, &token, NOW)
                    && c.registered.exp <= NOW
                {
                    expired(c.registered.exp);
                }
                let _ = self
                    .rt
                    .block_on(self.issuer.verify_zone_token(&token, "ingress"));
            }
        }
    }
}
