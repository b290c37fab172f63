//! Real iroh connections on 127.0.0.1 between separate processes: `serve` on
//! one home, `join` and `sync` from others.

use std::time::Duration;

use crate::common::{Server, TestHome, eventually, joined};

fn sync(home: &TestHome) -> serde_json::Value {
    home.ok(&["--json", "sync", "--bind", "127.0.0.1:0", "--timeout", "10"])
        .json()
}

#[test]
fn three_homes_join_post_sync_and_converge() {
    let ana = TestHome::founded("Ana");
    let rid = ana
        .ok(&[
            "open",
            "development",
            "New director",
            "--summary",
            "A change in management.",
        ])
        .id();
    let tid = ana
        .ok(&["thread", &rid, "First reactions", "-m", "What do we know?"])
        .id();
    let _server = Server::start(&ana);
    let bo = joined(&ana, "Bo");
    let cy = joined(&ana, "Cy");

    bo.ok(&["post", &tid, "-m", "Bo was here."]);
    let did = cy
        .ok(&[
            "draft",
            "new",
            &rid,
            "Our position",
            "-m",
            "We ask to be consulted.",
        ])
        .id();
    ana.ok(&["post", &tid, "-m", "Ana, while serving."]);
    let report = sync(&bo);
    assert_eq!(report["peers"][0]["ok"], true);
    assert!(report["peers"][0]["sent_changes"].as_u64() >= Some(1));
    sync(&cy);
    cy.ok(&["stance", &did, "support"]);
    sync(&cy);
    sync(&bo);

    let views: Vec<String> = [&ana, &bo, &cy]
        .iter()
        .map(|h| h.ok(&["--json", "show", &rid]).stdout)
        .collect();
    assert_eq!(views[0], views[1]);
    assert_eq!(views[0], views[2]);
    let tallies: Vec<String> = [&ana, &bo, &cy]
        .iter()
        .map(|h| h.ok(&["--json", "tally", &rid]).stdout)
        .collect();
    assert_eq!(tallies[0], tallies[1]);
    assert_eq!(tallies[0], tallies[2]);
    let shown: serde_json::Value = serde_json::from_str(&views[0]).unwrap_or_default();
    let comments: Vec<&str> = shown["threads"][0]["comments"]
        .as_array()
        .map(|c| c.iter().filter_map(|x| x["author_name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(comments.len(), 3, "{comments:?}");
    assert!(comments.contains(&"Bo") && comments.contains(&"Ana"));
    let members = ana.ok(&["--json", "members"]).json();
    assert_eq!(members.as_array().map(|m| m.len()), Some(3));
    // Nothing more to move: a second pass is a no-op.
    let again = sync(&bo);
    assert_eq!(again["peers"][0]["received_changes"], 0);
}

#[test]
fn strangers_reused_invites_and_removed_members_are_refused() {
    let ana = TestHome::founded("Ana");
    let rid = ana
        .ok(&["open", "development", "Policy", "--summary", "s"])
        .id();
    let tid = ana.ok(&["thread", &rid, "Views"]).id();
    let _server = Server::start(&ana);
    let peer_ticket = ana.ok(&["ticket"]).id();

    // A device of another community is refused: its own side does not even
    // dial, and a raw endpoint that dials anyway is closed by Ana's gate
    // before it receives a byte.
    let stranger = TestHome::founded("Sam");
    let r = stranger.fails(
        4,
        &[
            "--json",
            "sync",
            &peer_ticket,
            "--bind",
            "127.0.0.1:0",
            "--timeout",
            "5",
        ],
    );
    assert_eq!(r.json()["peers"][0]["ok"], false);
    assert_eq!(raw_dial_receives(&peer_ticket), 0);

    // An invite admits one member only.
    let ticket = ana.ok(&["invite"]).id();
    let bo = TestHome::new();
    bo.ok(&["init", "--name", "Bo"]);
    bo.ok(&["join", &ticket, "--bind", "127.0.0.1:0"]);
    let eve = TestHome::new();
    eve.ok(&["init", "--name", "Eve"]);
    let r = eve.fails(4, &["join", &ticket, "--bind", "127.0.0.1:0"]);
    assert!(r.stderr.contains("already used"), "{}", r.stderr);
    assert!(!eve.path().join("communities").exists() || eve.run(&["responses"]).code != 0);

    // An expired invite too.
    let expired = ana.ok(&["invite", "--expires", "1m"]).id();
    let late = TestHome::new();
    late.ok(&["init", "--name", "Late"]);
    let r = late
        .command(&["join", &expired, "--bind", "127.0.0.1:0"])
        .env("CONVENE_NOW", "1795946520")
        .output();
    let r = r.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(String::from_utf8_lossy(&r.stderr).contains("expired"));

    // A removed member's earlier words stay; later ones are refused.
    bo.ok(&["post", &tid, "-m", "Before removal."]);
    sync(&bo);
    ana.ok(&["remove", "Bo", "--reason", "left the network"]);
    bo.ok(&["post", &tid, "-m", "After removal."]);
    bo.fails(4, &["sync", "--bind", "127.0.0.1:0", "--timeout", "5"]);
    let shown = ana.ok(&["--json", "show", &rid]).stdout;
    assert!(shown.contains("Before removal.") && !shown.contains("After removal."));
    let members = ana.ok(&["--json", "members"]).json();
    let bo_entry = members
        .as_array()
        .and_then(|m| m.iter().find(|x| x["name"] == "Bo"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(bo_entry["removed"], true);
}

/// An endpoint on 127.0.0.1 with `key`, no relay, no address lookup and no
/// gate.
async fn bare_endpoint(key: iroh::SecretKey) -> iroh::Endpoint {
    iroh::Endpoint::builder(iroh::endpoint::presets::Minimal)
        .relay_mode(iroh::RelayMode::Disabled)
        .secret_key(key)
        .clear_ip_transports()
        .bind_addr("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("{e}"))
        .bind()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// What a stranger got from a dial.
struct Probe {
    /// Bytes read from the stream.
    bytes: usize,
    /// The connection was closed with the gate's code 403.
    refused: bool,
}

/// Dial `ticket` on the sync protocol `attempts` times, each from a new
/// bare endpoint with a fresh key and no gate, send a Hello each time, and
/// count the bytes that come back.
fn strangers_dial(ticket: &str, attempts: usize) -> Vec<Probe> {
    use convene::net::{PeerTicket, SYNC_ALPN};
    use iroh::endpoint::presets;
    let ticket = PeerTicket::decode(ticket).unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        let mut probes = Vec::new();
        for _ in 0..attempts {
            let ep = iroh::Endpoint::builder(presets::Minimal)
                .relay_mode(iroh::RelayMode::Disabled)
                .clear_ip_transports()
                .bind_addr("127.0.0.1:0")
                .unwrap_or_else(|e| panic!("{e}"))
                .bind()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let id = iroh::EndpointId::from_bytes(&ticket.device).unwrap_or_else(|e| panic!("{e}"));
            let addr = ticket
                .addrs
                .iter()
                .fold(iroh::EndpointAddr::new(id), |a, s| a.with_ip_addr(*s));
            let mut probe = Probe {
                bytes: 0,
                refused: false,
            };
            let connected =
                tokio::time::timeout(Duration::from_secs(5), ep.connect(addr, SYNC_ALPN)).await;
            if let Ok(Ok(conn)) = connected {
                if let Ok((mut send, mut recv)) = conn.open_bi().await {
                    let hello = convene::sync::frame::encode(&convene::sync::Frame::Hello {
                        version: 1,
                        community: [0; 32],
                        certificates: vec![],
                    });
                    let _ = tokio::io::AsyncWriteExt::write_all(&mut send, &hello).await;
                    let mut buf = vec![0u8; 1024];
                    loop {
                        match tokio::time::timeout(Duration::from_secs(5), recv.read(&mut buf))
                            .await
                        {
                            Ok(Ok(Some(n))) if n > 0 => probe.bytes += n,
                            _ => break,
                        }
                    }
                }
                let _ = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
                probe.refused = conn
                    .close_reason()
                    .is_some_and(|r| r.to_string().contains("403"));
            } else {
                // Refused during the handshake: nothing was sent either.
                probe.refused = true;
            }
            ep.close().await;
            probes.push(probe);
        }
        probes
    })
}

fn raw_dial_receives(ticket: &str) -> usize {
    strangers_dial(ticket, 1).iter().map(|p| p.bytes).sum()
}

#[test]
fn a_hundred_strangers_are_all_refused_and_receive_nothing() {
    let ana = TestHome::founded("Ana");
    ana.ok(&["open", "development", "Policy", "--summary", "secret plans"]);
    let server = Server::start(&ana);
    let probes = strangers_dial(&server.ticket, 100);
    let refused = probes.iter().filter(|p| p.refused).count();
    let bytes: usize = probes.iter().map(|p| p.bytes).sum();
    eprintln!("100 strangers: {refused} refused, {bytes} community bytes received");
    assert_eq!(refused, 100);
    assert_eq!(bytes, 0);
    // And serve still serves members.
    let bo = joined(&ana, "Bo");
    assert!(bo.ok(&["--json", "responses"]).stdout.contains("Policy"));
}

#[test]
fn the_demo_runs_over_real_connections_and_leaves_nothing_behind() {
    let home = TestHome::new();
    let r = home.ok(&["demo"]);
    assert!(
        r.stdout.contains("## Dissent") && r.stdout.contains("Not yet heard: Dina."),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("byte-identical exports"), "{}", r.stderr);
    assert!(r.stderr.contains("checks hold"), "{}", r.stderr);
    // The live line is for terminals: a pipe gets plain lines.
    assert!(!r.stderr.contains('\r'), "{:?}", r.stderr);
    let left: Vec<_> = std::fs::read_dir(home.path())
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "the demo wrote into the user's home");
}

#[test]
fn a_second_device_joins_as_the_same_member_without_the_member_key() {
    let ana = TestHome::founded("Ana");
    let rid = ana
        .ok(&["open", "development", "Policy", "--summary", "s"])
        .id();
    let tid = ana.ok(&["thread", &rid, "Views"]).id();
    let _server = Server::start(&ana);
    let ticket = ana.ok(&["device", "link"]).id();
    assert!(ticket.starts_with("cvlink"));

    let phone = TestHome::new();
    let added = phone
        .ok(&["--json", "device", "add", &ticket, "--bind", "127.0.0.1:0"])
        .json();
    let who_laptop = ana.ok(&["--json", "whoami"]).json();
    let who_phone = phone.ok(&["--json", "whoami"]).json();
    assert_eq!(who_phone["member"], who_laptop["member"]);
    assert_ne!(who_phone["device"], who_laptop["device"]);
    assert_eq!(added["member"], who_laptop["member"]);
    assert!(
        !phone.path().join("identity").join("member.key").exists(),
        "the member key never moves"
    );

    phone.ok(&["post", &tid, "-m", "Written on my phone."]);
    sync(&phone);
    let shown = ana.ok(&["--json", "show", &rid]).json();
    assert_eq!(shown["threads"][0]["comments"][0]["author_name"], "Ana");
    assert_eq!(
        shown["threads"][0]["comments"][0]["body"],
        "Written on my phone."
    );
    let members = ana.ok(&["--json", "members"]).json();
    assert_eq!(members[0]["devices"].as_array().map(|d| d.len()), Some(2));

    // What needs the member key is refused on the linked device.
    let r = phone.fails(1, &["invite"]);
    assert!(r.stderr.contains("member key"), "{}", r.stderr);
    // The ticket works once.
    let again = TestHome::new();
    let r = again.fails(4, &["device", "add", &ticket, "--bind", "127.0.0.1:0"]);
    assert!(r.stderr.contains("already used"), "{}", r.stderr);
}

#[test]
fn serve_pushes_local_changes_to_known_peers() {
    let ana = TestHome::founded("Ana");
    let rid = ana
        .ok(&["open", "development", "Policy", "--summary", "s"])
        .id();
    let tid = ana.ok(&["thread", &rid, "Views"]).id();
    let _ana_server = Server::start(&ana);
    let bo = joined(&ana, "Bo");
    let _bo_server = Server::start(&bo);
    // Ana learns where Bo's device listens.
    let bo_ticket = bo.ok(&["ticket"]).id();
    ana.ok(&[
        "sync",
        &bo_ticket,
        "--bind",
        "127.0.0.1:0",
        "--timeout",
        "10",
    ]);

    // A comment written by a separate command on Bo's home reaches Ana
    // through Bo's serve, and the other way round, with no sync command.
    bo.ok(&["post", &tid, "-m", "Pushed by Bo's serve."]);
    assert!(eventually(|| ana
        .ok(&["--json", "show", &rid])
        .stdout
        .contains("Pushed by Bo's serve.")));
    ana.ok(&["post", &tid, "-m", "Pushed by Ana's serve."]);
    assert!(eventually(|| bo
        .ok(&["--json", "show", &rid])
        .stdout
        .contains("Pushed by Ana's serve.")));
}

#[test]
fn a_silent_member_does_not_hold_up_serve() {
    let ana = TestHome::founded("Ana");
    let rid = ana
        .ok(&["open", "development", "Policy", "--summary", "s"])
        .id();
    let tid = ana.ok(&["thread", &rid, "Views", "-m", "First."]).id();
    // A long idle timeout: under a one-session-at-a-time serve, the silent
    // session below would hold everyone else back for a minute.
    let server = Server::spawn(ana.command(&[
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--no-mdns",
        "--timeout",
        "60",
    ]));
    let bo = joined(&ana, "Bo");
    let cy = joined(&ana, "Cy");
    ana.ok(&["post", &tid, "-m", "Posted while Bo is silent."]);

    let bo_device = convene::store::Home::new(bo.path().to_path_buf())
        .identity()
        .unwrap_or_else(|e| panic!("{e}"))
        .device;
    let ticket = convene::net::PeerTicket::decode(&server.ticket).unwrap_or_else(|e| panic!("{e}"));
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        use convene::net::SYNC_ALPN;
        // Bo's own device key, so that Ana's gate lets the connection in.
        let endpoint = bare_endpoint(iroh::SecretKey::from_bytes(&bo_device.to_bytes())).await;
        let addr = ticket.endpoint_addr().unwrap_or_else(|e| panic!("{e}"));
        let conn = endpoint
            .connect(addr, SYNC_ALPN)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (mut send, _recv) = conn.open_bi().await.unwrap_or_else(|e| panic!("{e}"));
        // Two bytes of a length prefix, then silence.
        tokio::io::AsyncWriteExt::write_all(&mut send, &[0, 0])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tokio::time::sleep(Duration::from_millis(300)).await;

        let cy_sync = tokio::task::spawn_blocking(move || {
            let r = cy.run(&["--json", "sync", "--bind", "127.0.0.1:0", "--timeout", "10"]);
            let show = cy.ok(&["--json", "show", &rid]).stdout;
            (r, show)
        });
        let (r, show) = cy_sync.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.code, 0, "Cy's sync: {}\n{}", r.stdout, r.stderr);
        assert!(show.contains("Posted while Bo is silent."), "{show}");
        assert!(
            conn.close_reason().is_none(),
            "the silent session is still open: {:?}",
            conn.close_reason()
        );
        endpoint.close().await;
    });
}

#[test]
fn serve_retries_an_unreachable_peer_until_it_is_back() {
    let ana = TestHome::founded("Ana");
    let rid = ana
        .ok(&["open", "development", "Policy", "--summary", "s"])
        .id();
    let tid = ana.ok(&["thread", &rid, "Views"]).id();
    let _ana_server = Server::start(&ana);
    let bo = joined(&ana, "Bo");
    // Bo listens on a fixed port, so that Ana's remembered address stays right.
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let bo_bind = format!("127.0.0.1:{port}");
    let bo_serve = || Server::spawn(bo.command(&["serve", "--bind", &bo_bind, "--no-mdns"]));
    let bo_server = bo_serve();
    ana.ok(&[
        "sync",
        &bo_server.ticket,
        "--bind",
        "127.0.0.1:0",
        "--timeout",
        "10",
    ]);
    drop(bo_server);

    // Bo is away: Ana's serve fails to push, and backs off.
    ana.ok(&["post", &tid, "-m", "Written while Bo was away."]);
    std::thread::sleep(Duration::from_secs(3));
    // Bo comes back, but does not know where Ana is: only Ana's retries
    // can bring the comment.
    std::fs::remove_file(bo.community_dir().join("peers.json")).unwrap_or_else(|e| panic!("{e}"));
    let _bo_server = bo_serve();
    assert!(crate::common::eventually_within(30, || bo
        .ok(&["--json", "show", &rid])
        .stdout
        .contains("Written while Bo was away.")));
}
