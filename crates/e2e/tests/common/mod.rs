//! Shared fixture of the mesh tests: Kong Air behind real sidecars.

// Test code: a panic is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use std::time::Duration;

use aerie_e2e::{
    ControlPlane, Dataplane, Kumactl, Process, free_port, http, loopback_ip, start_app,
    start_app_with, wait_for,
};

/// How long a policy change may take to reach the proxies before a test fails.
pub const PROPAGATION: Duration = Duration::from_secs(15);

/// Kong Air: check-in-api (the destination), flight-control (allowed caller), and booking
/// (another caller), each app behind its own sidecar on its own loopback address.
pub struct KongAir {
    pub cp: ControlPlane,
    pub kumactl: Kumactl,
    pub checkin: Dataplane,
    pub flight_control: Dataplane,
    pub booking: Dataplane,
    /// The callers' outbound listeners to check-in-api.
    pub from_flight_control: String,
    pub from_booking: String,
    /// check-in-api's inbound (sidecar) address.
    pub checkin_inbound: String,
    _apps: Vec<Process>,
}

fn dataplane_yaml(
    name: &str,
    ip: &str,
    admin: u16,
    service: &str,
    app_port: u16,
    protocol: &str,
    outbound: Option<(u16, &str)>,
) -> String {
    let mut y = format!(
        "type: Dataplane\nmesh: default\nname: {name}\nnetworking:\n  address: {ip}\n  admin:\n    port: {admin}\n  inbound:\n  - port: 9000\n    servicePort: {app_port}\n    tags:\n      kuma.io/service: {service}\n      kuma.io/protocol: {protocol}\n"
    );
    if let Some((port, dest)) = outbound {
        y.push_str(&format!(
            "  outbound:\n  - port: {port}\n    tags:\n      kuma.io/service: {dest}\n"
        ));
    }
    y
}

impl KongAir {
    pub fn start(protocol: &str) -> KongAir {
        Self::start_with(protocol, &[])
    }

    /// [`KongAir::start`] with more `kuma-dp run` arguments for flight-control's sidecar
    /// (`--concurrency 1`).
    pub fn start_with(protocol: &str, flight_control_args: &[&str]) -> KongAir {
        let cp = ControlPlane::start();
        let kumactl = Kumactl::for_cp(&cp);
        let tcp = protocol == "tcp";
        let mut apps = Vec::new();
        let app_port = |apps: &mut Vec<Process>, name: &str, tcp: bool| {
            let port = free_port("127.0.0.1");
            apps.push(start_app(name, &format!("127.0.0.1:{port}"), tcp));
            port
        };
        let checkin_app = app_port(&mut apps, "check-in-api", tcp);
        let fc_app = app_port(&mut apps, "flight-control", false);
        let booking_app = app_port(&mut apps, "booking", false);
        let (fc_out, booking_out) = (free_port("127.0.0.1"), free_port("127.0.0.1"));
        let admin = || free_port("127.0.0.1");
        let (a1, a2, a3) = (admin(), admin(), admin());
        let checkin_ip = loopback_ip();
        let checkin = Dataplane::start(
            &cp,
            "check-in-api-1",
            &dataplane_yaml(
                "check-in-api-1",
                &checkin_ip,
                a1,
                "check-in-api-blu",
                checkin_app,
                protocol,
                None,
            ),
            a1,
        );
        let flight_control = Dataplane::start_with_args(
            &cp,
            "flight-control-1",
            &dataplane_yaml(
                "flight-control-1",
                &loopback_ip(),
                a2,
                "flight-control-blu",
                fc_app,
                "http",
                Some((fc_out, "check-in-api-blu")),
            ),
            a2,
            flight_control_args,
        );
        let booking = Dataplane::start(
            &cp,
            "booking-1",
            &dataplane_yaml(
                "booking-1",
                &loopback_ip(),
                a3,
                "booking-blu",
                booking_app,
                "http",
                Some((booking_out, "check-in-api-blu")),
            ),
            a3,
        );
        let mut k = KongAir {
            cp,
            kumactl,
            checkin,
            flight_control,
            booking,
            from_flight_control: format!("127.0.0.1:{fc_out}"),
            from_booking: format!("127.0.0.1:{booking_out}"),
            checkin_inbound: format!("{checkin_ip}:9000"),
            _apps: apps,
        };
        k.checkin.wait_ready();
        k.flight_control.wait_ready();
        k.booking.wait_ready();
        k
    }

    /// Another instance of check-in-api (`check-in-api-2`): its app named `app_name` and
    /// started with `app_args` (e.g. `--fail-status 500`), behind its own sidecar. Ready
    /// once it returns.
    pub fn add_checkin_instance(&mut self, app_name: &str, app_args: &[&str]) -> Dataplane {
        self.add_checkin_instance_named("check-in-api-2", app_name, app_args)
    }

    /// [`KongAir::add_checkin_instance`] with the Dataplane's name (`check-in-api-3`...).
    pub fn add_checkin_instance_named(
        &mut self,
        dataplane: &str,
        app_name: &str,
        app_args: &[&str],
    ) -> Dataplane {
        self.add_checkin_instance_with_app(dataplane, app_name, app_args)
            .0
    }

    /// [`KongAir::add_checkin_instance_named`], also returning the app's own address (to
    /// drive it directly, e.g. `/toggle-health`).
    pub fn add_checkin_instance_with_app(
        &mut self,
        dataplane: &str,
        app_name: &str,
        app_args: &[&str],
    ) -> (Dataplane, String) {
        let port = free_port("127.0.0.1");
        self._apps.push(start_app_with(
            app_name,
            &format!("127.0.0.1:{port}"),
            app_args,
        ));
        let admin = free_port("127.0.0.1");
        let mut dp = Dataplane::start(
            &self.cp,
            dataplane,
            &dataplane_yaml(
                dataplane,
                &loopback_ip(),
                admin,
                "check-in-api-blu",
                port,
                "http",
                None,
            ),
            admin,
        );
        dp.wait_ready();
        (dp, format!("127.0.0.1:{port}"))
    }

    /// Waits until every proxy holds its certificate and check-in-api's inbound is STRICT
    /// (after [`MTLS`] was applied), so that no later request meets the switch.
    pub fn wait_mtls(&self) {
        wait_for("mTLS in force", PROPAGATION, || {
            let dump = |admin: &str| {
                http("GET", admin, "/config_dump", None, &[])
                    .ok()
                    .map(|r| r.json())
            };
            let checkin = dump(&self.checkin.admin)?;
            let callers = [
                dump(&self.flight_control.admin)?,
                dump(&self.booking.admin)?,
            ];
            (checkin["config"]["mtls"] == "strict"
                && checkin["identity"].is_object()
                && callers.iter().all(|c| c["identity"].is_object()))
            .then_some(())
        });
    }

    pub fn apply(&self, yaml: &str) {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.yaml");
        std::fs::write(&f, yaml).unwrap();
        self.kumactl.ok(&["apply", "-f", f.to_str().unwrap()]);
    }
}

/// Aerie's `_explain` of one outbound of a Dataplane of mesh `default`: the one addressed
/// to `service`, with its policies, merged confs and what the proxy enforces.
pub fn explained_outbound(cp: &ControlPlane, dataplane: &str, service: &str) -> serde_json::Value {
    let r = cp.get(&format!("/meshes/default/dataplanes/{dataplane}/_explain"));
    assert_eq!(r.status, 200, "{}", r.body);
    let answer = r.json();
    answer["outbounds"]
        .as_array()
        .and_then(|os| os.iter().find(|o| o["target"]["name"] == service).cloned())
        .unwrap_or_else(|| panic!("no outbound to {service} in {answer}"))
}

/// The status code a caller gets from check-in-api through its sidecar (0 = no answer).
pub fn call(outbound: &str) -> u16 {
    http("GET", outbound, "/check-in", None, &[])
        .map(|r| r.status)
        .unwrap_or(0)
}

pub fn wait_status(what: &str, outbound: &str, want: u16) {
    wait_for(what, PROPAGATION, || (call(outbound) == want).then_some(()));
}

pub const MTLS: &str = "type: Mesh\nname: default\nmtls:\n  backends:\n    - name: builtin\n      type: builtin\n  enabledBackend: builtin\n";
pub const ALLOW_ALL: &str = "type: MeshTrafficPermission\nname: allow-all\nmesh: default\nspec:\n  targetRef:\n    kind: Mesh\n  from:\n    - targetRef:\n        kind: Mesh\n      default:\n        action: Allow\n";
pub const DENY_ALL: &str = "type: MeshTrafficPermission\nname: default-deny\nmesh: default\nspec:\n  targetRef:\n    kind: Mesh\n  from:\n    - targetRef:\n        kind: Mesh\n      default:\n        action: Deny\n";
pub const TARGETED: &str = "type: MeshTrafficPermission\nname: allow-flight-control-to-check-in\nmesh: default\nspec:\n  targetRef:\n    kind: MeshService\n    name: check-in-api-blu\n  from:\n    - targetRef:\n        kind: MeshService\n        name: flight-control-blu\n      default:\n        action: Allow\n";

/// Runs `serve` on its own runtime thread with a listener on a free loopback port (a
/// collector the proxies send to); returns the address it listens on.
pub fn spawn_server<F, Fut>(serve: F) -> String
where
    F: FnOnce(tokio::net::TcpListener) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap().to_string()).unwrap();
            serve(listener).await;
        });
    });
    rx.recv().unwrap()
}
