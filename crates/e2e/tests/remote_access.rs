//! A client on another "host" (a network namespace joined by a veth pair) is not trusted
//! like a loopback client: it needs a user token to write or to read secrets.

use aerie_e2e::{ControlPlane, Kumactl, NetNs, bin, text};

const MESH: &str = "type: Mesh\nname: remote-made\n";

#[test]
fn non_loopback_client_needs_a_token_to_write() {
    let ns = match NetNs::create() {
        Ok(ns) => ns,
        Err(why) => {
            aerie_e2e::skipped(
                "non_loopback_client_needs_a_token_to_write",
                &format!("cannot create a network namespace here ({why})"),
            );
            return;
        }
    };
    // The control plane listens on the host side of the veth (and on loopback for setup).
    let cp = ControlPlane::start_with(&[("KUMA_API_SERVER_HTTP_INTERFACE", "0.0.0.0")]);
    let api = format!("{}:{}", ns.host_ip, cp.addrs.http);
    let local = Kumactl::for_cp(&cp);

    // From the namespace, without a token: reads work, writes and secret reads do not.
    let remote = Kumactl::new();
    let in_ns = |k: &Kumactl, args: &[&str], stdin: Option<&str>| {
        let mut cmd = ns.command(&bin("kumactl"));
        cmd.env_clear().env("HOME", k.home()).args(args);
        if let Some(input) = stdin {
            use std::io::Write;
            let mut child = cmd
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        } else {
            cmd.output().unwrap()
        }
    };
    let url = format!("http://{api}");
    let out = in_ns(
        &remote,
        &[
            "config",
            "control-planes",
            "add",
            "--name",
            "remote",
            "--address",
            &url,
        ],
        None,
    );
    assert!(
        out.status.success(),
        "add from namespace: {}",
        text(&out.stderr)
    );
    let out = in_ns(&remote, &["get", "meshes"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("default"));
    let out = in_ns(&remote, &["apply", "-f", "-"], Some(MESH));
    assert!(!out.status.success(), "an anonymous remote write must fail");
    let err = text(&out.stderr);
    assert!(
        err.contains("Unauthenticated") || err.contains("401") || err.contains("user token"),
        "{err}"
    );
    assert_eq!(cp.get("/meshes/remote-made").status, 404, "nothing stored");
    let out = in_ns(&remote, &["get", "secrets"], None);
    assert!(!out.status.success(), "secrets need a token");

    // A non-admin token is authenticated but forbidden; an admin token may write.
    let user = local.ok(&[
        "generate",
        "user-token",
        "--name",
        "alice",
        "--group",
        "team-a",
        "--valid-for",
        "1h",
    ]);
    let admin = local.ok(&[
        "generate",
        "user-token",
        "--name",
        "root",
        "--group",
        "mesh-system:admin",
        "--valid-for",
        "1h",
    ]);
    let with_token = |token: &str| {
        let k = Kumactl::new();
        let out = in_ns(
            &k,
            &[
                "config",
                "control-planes",
                "add",
                "--name",
                "remote",
                "--address",
                &url,
                "--auth-type",
                "tokens",
                "--auth-conf",
                &format!("token={}", token.trim()),
            ],
            None,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        in_ns(&k, &["apply", "-f", "-"], Some(MESH))
    };
    let out = with_token(&user);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("Access Denied") || text(&out.stderr).contains("403"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(cp.get("/meshes/remote-made").status, 404);
    let out = with_token(&admin);
    assert!(out.status.success(), "admin token: {}", text(&out.stderr));
    assert_eq!(cp.get("/meshes/remote-made").status, 200);
    let out = with_token("not-a-token");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("invalid user token"),
        "{}",
        text(&out.stderr)
    );
}
