//! Discovery on a LAN with no internet: two hosts, each a network namespace
//! made by this test and joined by a veth cable (no other network), each
//! running `serve` with mDNS on. Neither knows the other's address; each
//! finds the other through mDNS and their changes cross.
//!
//! Needs root and iproute2 (`ip netns`), as on CI. Where they are missing
//! the test says so and passes, unless `CONVENE_REQUIRE_NETNS=1`.

use std::process::{Command, Stdio};

use crate::common::{Server, TestHome, eventually_within};

/// Two namespaces joined by a veth pair, deleted when dropped.
struct TwoHosts {
    names: [String; 2],
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl TwoHosts {
    /// Hosts 10.231.<n>.1 and 10.231.<n>.2 on their own cable, or `None`
    /// where namespaces cannot be made here.
    fn new() -> Option<Self> {
        let tag = std::process::id() % 100_000;
        let names = [format!("cvlan{tag}a"), format!("cvlan{tag}b")];
        if !ip(&["netns", "add", &names[0]]) {
            return None;
        }
        let hosts = TwoHosts {
            names: names.clone(),
        };
        let (veth_a, veth_b) = (format!("cv{tag}a"), format!("cv{tag}b"));
        let subnet = tag % 250;
        let ok = ip(&["netns", "add", &names[1]])
            && ip(&[
                "link", "add", &veth_a, "type", "veth", "peer", "name", &veth_b,
            ])
            && [(0, &veth_a, 1), (1, &veth_b, 2)]
                .iter()
                .all(|(i, veth, host)| {
                    let ns = names[*i].as_str();
                    let addr = format!("10.231.{subnet}.{host}/24");
                    ip(&["link", "set", veth, "netns", ns])
                        && ip(&["-n", ns, "addr", "add", &addr, "dev", veth])
                        && ip(&["-n", ns, "link", "set", veth, "up"])
                        && ip(&["-n", ns, "link", "set", "lo", "up"])
                        // Multicast leaves by the default route.
                        && ip(&["-n", ns, "route", "add", "default", "dev", veth])
                });
        ok.then_some(hosts)
    }

    /// `convene ARGS` for `home`, run on host `i`.
    fn command(&self, i: usize, home: &TestHome, args: &[&str]) -> Command {
        let inner = home.command(args);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.names[i]])
            .arg(inner.get_program())
            .args(inner.get_args())
            .stdin(Stdio::null());
        for (key, value) in inner.get_envs() {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        cmd
    }
}

impl Drop for TwoHosts {
    fn drop(&mut self) {
        for name in &self.names {
            ip(&["netns", "del", name]);
        }
    }
}

fn run_ok(mut command: Command) -> String {
    let out = command.output().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{command:?}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn members_on_a_lan_find_each_other_with_no_ticket() {
    let Some(hosts) = TwoHosts::new() else {
        assert!(
            std::env::var("CONVENE_REQUIRE_NETNS").is_err(),
            "network namespaces are required but cannot be made here"
        );
        eprintln!("skipped: network namespaces cannot be made here (needs root and iproute2)");
        return;
    };
    let ana = TestHome::founded("Ana");
    let rid = ana
        .ok(&["open", "development", "Policy", "--summary", "s"])
        .id();
    let tid = ana.ok(&["thread", &rid, "Views"]).id();

    // Bo joins through Ana's serve on host A, by invite.
    let ana_server = Server::spawn(hosts.command(0, &ana, &["serve"]));
    let invite = ana.ok(&["invite"]).id();
    let bo = TestHome::new();
    bo.ok(&["init", "--name", "Bo"]);
    run_ok(hosts.command(1, &bo, &["join", &invite]));
    drop(ana_server);

    // Forget every address: from here on, only mDNS can bring them together.
    for home in [&ana, &bo] {
        let _ = std::fs::remove_file(home.community_dir().join("peers.json"));
    }
    let _ana_server = Server::spawn(hosts.command(0, &ana, &["serve"]));
    let _bo_server = Server::spawn(hosts.command(1, &bo, &["serve"]));
    ana.ok(&["post", &tid, "-m", "From host A."]);
    bo.ok(&["post", &tid, "-m", "From host B."]);
    let shows =
        |home: &TestHome, text: &str| home.ok(&["--json", "show", &rid]).stdout.contains(text);
    assert!(eventually_within(30, || shows(&bo, "From host A.")));
    assert!(eventually_within(30, || shows(&ana, "From host B.")));
    let ana_peers = std::fs::read_to_string(ana.community_dir().join("peers.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(ana_peers.contains("10.231."), "{ana_peers}");
}
