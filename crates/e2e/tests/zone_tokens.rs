//! Zone tokens through the real binaries: `kumactl generate zone-token` against kuma-cp, the
//! signing key and its public half stored as global secrets (the public one holding no private
//! key), and bad requests refused with 400 naming the field.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aerie_e2e::{ControlPlane, Kumactl, http};
use aerie_identity::{Claims, VerifyingKey, ZoneClaims, verify_token};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// The text a GlobalSecret holds (its `data` is base64).
fn secret_text(cp: &ControlPlane, name: &str) -> String {
    let resp = cp.get(&format!("/globalsecrets/{name}"));
    assert_eq!(resp.status, 200, "{name}: {}", resp.body);
    let data = resp.json()["data"].as_str().expect("data").to_string();
    String::from_utf8(STANDARD.decode(data).expect("base64")).expect("text")
}

/// The claims of a token, read without verifying (for the checks below).
fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

fn post_zone_token(cp: &ControlPlane, body: &Value) -> (u16, Value) {
    let resp = http(
        "POST",
        &cp.addrs.api(),
        "/tokens/zone",
        Some(&body.to_string()),
        &[("Content-Type", "application/json")],
    )
    .expect("POST /tokens/zone");
    let status = resp.status;
    (status, resp.json())
}

#[test]
fn zone_tokens_are_issued_and_their_keys_stored() {
    let cp = ControlPlane::start();
    let k = Kumactl::for_cp(&cp);

    // No signing key before the first zone token.
    for name in [
        "zone-token-signing-key-1",
        "zone-token-signing-public-key-1",
    ] {
        assert_eq!(cp.get(&format!("/globalsecrets/{name}")).status, 404);
    }

    let token = k.ok(&[
        "generate",
        "zone-token",
        "--zone",
        "zone-1",
        "--scope",
        "ingress",
        "--valid-for",
        "720h",
    ]);
    assert_eq!(token.split('.').count(), 3, "{token}");
    let claims = payload(&token);
    assert_eq!(claims["Zone"], "zone-1");
    assert_eq!(claims["Scope"], json!(["ingress"]));
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert_eq!(lifetime, 720 * 3600);

    // The private key is stored but never served over the API (not even to an admin); lists
    // show it without its data. Beside it, its public half, readable.
    let resp = cp.get("/globalsecrets/zone-token-signing-key-1");
    assert_eq!(resp.status, 403, "{}", resp.body);
    assert!(
        resp.body.contains("never served over the API"),
        "{}",
        resp.body
    );
    let listed = cp.get("/globalsecrets").json();
    let key = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "zone-token-signing-key-1")
        .expect("the private key is listed");
    assert!(key.get("data").is_none(), "{key}");
    let public = secret_text(&cp, "zone-token-signing-public-key-1");
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"), "{public}");
    assert!(!public.contains("PRIVATE"), "{public}");
    // The token checks out with the public key alone, as a zone control plane checks it.
    let key = VerifyingKey::from_public_key_pem(&public).expect("a P-256 public key");
    let lookup = |kid: &str| (kid == "1").then(|| key.clone());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let verified: Claims<ZoneClaims> = verify_token(&lookup, &token, now).expect("verifies");
    assert_eq!(verified.custom.zone, "zone-1");

    // Without --scope: every scope; without --valid-for: Kuma's 10 years. Same keys.
    let all = k.ok(&["generate", "zone-token", "--zone", "zone-2"]);
    let claims = payload(&all);
    assert_eq!(claims["Scope"], json!(["cp", "ingress", "egress"]));
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert_eq!(lifetime, 10 * 365 * 86_400);
    assert!(verify_token::<Claims<ZoneClaims>>(&lookup, &all, now).is_ok());
    assert_eq!(secret_text(&cp, "zone-token-signing-public-key-1"), public);
}

#[test]
fn bad_zone_token_requests_are_refused_naming_the_field() {
    let cp = ControlPlane::start();
    let k = Kumactl::for_cp(&cp);

    let cases = [
        (
            json!({"zone": "", "scope": ["cp"]}),
            "zone",
            "cannot be empty",
        ),
        (json!({"scope": ["ingress"]}), "zone", "cannot be empty"),
        (
            json!({"zone": "zone-1", "scope": ["cp", "dataplane"]}),
            "scope[1]",
            "\"dataplane\" is not a valid scope: must be one of cp, ingress, egress",
        ),
        (
            json!({"zone": "zone-1", "validFor": "forever"}),
            "validFor",
            "\"forever\" is not a duration (e.g. 24h, 30m, 7d)",
        ),
        (
            json!({"zone": "Zone_1"}),
            "zone",
            "invalid characters. A lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        ),
    ];
    for (body, field, reason) in cases {
        let (status, answer) = post_zone_token(&cp, &body);
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["status"], 400);
        assert_eq!(
            answer["invalid_parameters"][0],
            json!({"field": field, "reason": reason}),
            "{body}: {answer}"
        );
    }
    let (status, answer) = post_zone_token(&cp, &json!({"zone": "zone-1", "scopes": ["cp"]}));
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["invalid_parameters"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("unknown field `scopes`"),
        "{answer}"
    );

    // Through kumactl: the server's refusal, and a bad scope caught before sending.
    let err = k.fails(&["generate", "zone-token", "--zone", ""]);
    assert_eq!(
        err,
        "Error: failed to generate a zone token: Could not process a resource (Resource is not valid);zone=cannot be empty \n"
    );
    let err = k.fails(&["generate", "zone-token", "--zone", "z", "--scope", "mesh"]);
    assert!(
        err.starts_with("Error: invalid value 'mesh' for '--scope <SCOPES>'"),
        "{err}"
    );

    // Nothing refused created a key.
    assert_eq!(
        cp.get("/globalsecrets/zone-token-signing-key-1").status,
        404
    );
}
