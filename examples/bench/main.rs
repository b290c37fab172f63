//! The performance benchmark: builds a realistic community in temporary
//! homes and measures convene on it, side by side with Automerge's own sync
//! protocol in memory. Prints one JSON line per figure,
//! `{"figure": NAME, "value": X, "unit": U}`, and (unless `--quick`)
//! writes the same into docs/performance.md with the machine and command.
//!
//! ```sh
//! cargo run --release --example bench                 # 10,000 comments
//! cargo run --release --example bench -- --quick      # CI-sized, < 2 min
//! cargo run --release --example bench -- --comments 50000 --no-docs
//! ```
//!
//! Medians of several runs; these machines are shared and noisy, so read
//! ratios and orders of magnitude, not single absolute times.

mod community;
mod converge;
mod measure;
mod peer_sync;
mod rng;
mod samod_catchup;

use std::path::PathBuf;

use community::{Community, Size};
use measure::{Figure, Serve, dir_bytes, median_ms, report, run, sync_commands};
use peer_sync::Held;

struct Options {
    quick: bool,
    comments: usize,
    edits: usize,
    runs: usize,
    docs: Option<PathBuf>,
    /// Build under this folder and leave the homes there (for profiling).
    keep: Option<PathBuf>,
}

fn options() -> anyhow::Result<Options> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let mut options = Options {
        quick,
        comments: if quick { 2_000 } else { 10_000 },
        edits: if quick { 30 } else { 300 },
        runs: if quick { 5 } else { 11 },
        docs: (!quick)
            .then(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/performance.md")),
        keep: None,
    };
    let mut i = 0;
    while i < args.len() {
        let value = || {
            args.get(i + 1)
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or_else(|| anyhow::anyhow!("{} needs a number", args[i]))
        };
        match args[i].as_str() {
            "--quick" => {}
            "--comments" => {
                options.comments = value()?;
                i += 1;
            }
            "--edits" => {
                options.edits = value()?;
                i += 1;
            }
            "--runs" => {
                options.runs = value()?.max(1);
                i += 1;
            }
            "--no-docs" => options.docs = None,
            "--keep" => {
                options.keep = Some(PathBuf::from(
                    args.get(i + 1)
                        .ok_or_else(|| anyhow::anyhow!("--keep needs a folder"))?,
                ));
                i += 1;
            }
            "--help" | "-h" => {
                println!(
                    "bench [--quick] [--comments N] [--edits N] [--runs N] [--no-docs] [--keep DIR]\n\
                     Builds a community of 50 members, 20 responses, N comments (10,000),\n\
                     40 drafts edited N times (300) and stances, then prints one JSON line\n\
                     per figure and (unless --quick or --no-docs) writes docs/performance.md.\n\
                     --keep DIR builds the homes under DIR and leaves them there."
                );
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other} (try --help)"),
        }
        i += 1;
    }
    anyhow::ensure!(options.comments >= 1, "--comments must be at least 1");
    Ok(options)
}

/// Comments the catching-up peer misses (all of them in a smaller
/// community).
const MISSED: usize = 1_000;

fn main() -> anyhow::Result<()> {
    let options = options()?;
    let bin = measure::convene_binary()?;
    // Built on tmpfs when there is one (every write is fsynced, which on a
    // disk makes building slow), then copied to disk, where it is measured.
    let scratch = match std::path::Path::new("/dev/shm").is_dir() {
        true => tempfile::tempdir_in("/dev/shm")?,
        false => tempfile::tempdir()?,
    };
    let root = match &options.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            tempfile::tempdir_in(dir)?
        }
        None => tempfile::tempdir()?,
    };
    let size = Size {
        members: 50,
        responses: 20,
        comments: options.comments,
        drafts: 40,
        edits_per_draft: options.edits,
    };
    let mut figures: Vec<Figure> = Vec::new();

    let built = std::time::Instant::now();
    let mut community = Community::found(scratch.path(), size, 0x5EED)?;
    community.edit_drafts(size.edits_per_draft)?;
    community.take_stances()?;
    let missed = MISSED.min(size.comments);
    community.add_comments(size.comments - missed)?;
    // Member 1's device stops syncing here: it will miss the last comments.
    community.copy_to(1)?;
    let behind = scratch.path().join("behind-pristine");
    community::copy_dir(
        &community.members[1]
            .home
            .root()
            .join("communities")
            .join(community.store.id().to_hex()),
        &behind,
    )?;
    community.add_comments(missed)?;
    let mut community = community.moved(scratch.path(), root.path())?;
    community.compact_as(0, community.store.dir())?;
    let behind = root.path().join("behind-pristine");
    drop(scratch);
    eprintln!(
        "bench: built {} members, {} responses, {} comments, {} drafts x {} edits in {:.1} s",
        size.members,
        size.responses,
        community.comments(),
        size.drafts,
        size.edits_per_draft,
        built.elapsed().as_secs_f64()
    );
    report(
        &mut figures,
        "comments",
        community.comments() as f64,
        "count",
    );
    report(
        &mut figures,
        "text_bytes",
        community.text_bytes as f64,
        "bytes",
    );

    // Loading the community store: certificates and every document, verified.
    let ahead_home = community.members[0].home.root().to_path_buf();
    let mut opens = Vec::new();
    for _ in 0..options.runs {
        let start = std::time::Instant::now();
        let store = community.members[0].home.resolve(None)?;
        let docs = peer_sync::load_docs(&store)?;
        opens.push(start.elapsed());
        drop(docs);
    }
    report(&mut figures, "open_ms_p50", median_ms(opens), "ms");
    report(
        &mut figures,
        "store_bytes",
        dir_bytes(community.store.dir()) as f64,
        "bytes",
    );

    // Whole-process commands on the founder's device.
    let (response, thread) = community.threads[0].clone();
    let mut posts = Vec::new();
    for i in 0..options.runs {
        let text = format!("Benchmark comment {i}: we agree with the transition period.");
        posts.push(run(
            &bin,
            &ahead_home,
            &["-q", "post", thread.as_str(), "-m", &text],
        )?);
    }
    report(&mut figures, "post_ms_p50", median_ms(posts), "ms");
    let mut shows = Vec::new();
    let mut tallies = Vec::new();
    for _ in 0..options.runs {
        shows.push(run(&bin, &ahead_home, &["show", response.as_str()])?);
        tallies.push(run(&bin, &ahead_home, &["tally", response.as_str()])?);
    }
    report(&mut figures, "show_ms_p50", median_ms(shows), "ms");
    report(&mut figures, "tally_ms_p50", median_ms(tallies), "ms");

    // A new member, admitted before serve starts (serve owns the home then).
    let joiner = convene::store::Home::new(root.path().join("joiner"));
    let joiner_identity = joiner.init("Newcomer")?;
    community::admit(
        &mut community.store,
        &community.members[0].identity,
        &joiner_identity,
    )?;

    // Catch-up over iroh on loopback, against Automerge in memory.
    let serve = Serve::start(&bin, &ahead_home)?;
    let behind_home = &community.members[1].home;
    let behind_dir = behind_home
        .root()
        .join("communities")
        .join(community.store.id().to_hex());
    let (mut catchups, mut in_memory) = (Vec::new(), Vec::new());
    let (mut wire_bytes, mut automerge_bytes) = (0, 0);
    let ahead_docs = peer_sync::load_docs(&community.members[0].home.resolve(None)?)?;
    let behind_docs = peer_sync::load_docs(&convene::store::CommunityStore::open(
        &behind,
        community.store.id(),
    )?)?;
    // The device behind, as it was before it missed the comments.
    let restore_behind = || -> std::io::Result<()> {
        std::fs::remove_dir_all(&behind_dir)?;
        community::copy_dir(&behind, &behind_dir)
    };
    let mut loaded_catchups = Vec::new();
    for _ in 0..options.runs {
        restore_behind()?;
        let (took, peer) = peer_sync::dial(behind_home, &serve.ticket, Held::OnDisk)?;
        catchups.push(took);
        wire_bytes = peer.bytes_sent + peer.bytes_received;
        restore_behind()?;
        let (took, _) = peer_sync::dial(behind_home, &serve.ticket, Held::InMemory)?;
        loaded_catchups.push(took);
        let (took, bytes) = peer_sync::automerge_in_memory(&ahead_docs, &behind_docs);
        in_memory.push(took);
        automerge_bytes = bytes;
    }
    let catchup_ms = median_ms(catchups);
    let automerge_ms = median_ms(in_memory);
    report(&mut figures, "catchup_ms_p50", catchup_ms, "ms");
    // The same with the device behind's documents already in memory, as
    // Automerge's are in its figure and a running `serve`'s are.
    let loaded_ms = median_ms(loaded_catchups);
    report(&mut figures, "catchup_loaded_ms_p50", loaded_ms, "ms");
    // The same catch-up as people run it: the whole `convene sync`
    // process, which also counts what arrived and records receipts.
    let commands = sync_commands(
        &bin,
        behind_home.root(),
        &serve.ticket,
        options.runs.min(5),
        &|| Ok(restore_behind()?),
    )?;
    report(
        &mut figures,
        "catchup_command_ms_p50",
        median_ms(commands),
        "ms",
    );
    report(&mut figures, "catchup_bytes", wire_bytes as f64, "bytes");
    report(&mut figures, "automerge_catchup_ms_p50", automerge_ms, "ms");
    report(
        &mut figures,
        "automerge_catchup_bytes",
        automerge_bytes as f64,
        "bytes",
    );
    report(
        &mut figures,
        "catchup_bytes_ratio",
        wire_bytes as f64 / automerge_bytes.max(1) as f64,
        "ratio",
    );
    report(
        &mut figures,
        "catchup_time_ratio",
        catchup_ms / automerge_ms.max(0.001),
        "ratio",
    );
    report(
        &mut figures,
        "catchup_loaded_time_ratio",
        loaded_ms / automerge_ms.max(0.001),
        "ratio",
    );

    // The same documents caught up by samod over a loopback connection.
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for (name, doc) in &ahead_docs {
        let mut ahead_doc = doc.clone();
        let mut behind_doc = behind_docs.get(name).cloned().unwrap_or_default();
        if ahead_doc.get_heads() != behind_doc.get_heads() {
            after.push(ahead_doc.save());
            before.push(behind_doc.save());
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut samod_times = Vec::new();
    let mut samod_bytes = 0;
    for _ in 0..options.runs.min(5) {
        let (took, bytes) =
            runtime.block_on(samod_catchup::samod_catchup(before.clone(), after.clone()))?;
        samod_times.push(took);
        samod_bytes = bytes;
    }
    drop(runtime);
    let samod_ms = median_ms(samod_times);
    report(&mut figures, "samod_catchup_ms_p50", samod_ms, "ms");
    report(
        &mut figures,
        "samod_catchup_bytes",
        samod_bytes as f64,
        "bytes",
    );
    report(
        &mut figures,
        "catchup_vs_samod_ratio",
        catchup_ms / samod_ms.max(0.001),
        "ratio",
    );
    report(
        &mut figures,
        "catchup_vs_samod_bytes_ratio",
        wire_bytes as f64 / samod_bytes.max(1) as f64,
        "ratio",
    );

    // A new member's first full sync of the whole community.
    let mut joins = Vec::new();
    let joined_dir = joiner
        .root()
        .join("communities")
        .join(community.store.id().to_hex());
    let certs: Vec<convene::trust::Certificate> = community
        .store
        .certificate_bytes()
        .iter()
        .map(|b| convene::trust::Certificate::from_bytes(b))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // The newcomer, admitted and holding nothing yet.
    let empty_joiner = || -> anyhow::Result<()> {
        if joined_dir.exists() {
            std::fs::remove_dir_all(&joined_dir)?;
        }
        convene::store::CommunityStore::create_joined(
            &joiner.root().join("communities"),
            community.store.id(),
            &certs,
        )?;
        Ok(())
    };
    for _ in 0..options.runs.min(5) {
        empty_joiner()?;
        joiner.set_current(&community.store.id())?;
        joins.push(peer_sync::dial(&joiner, &serve.ticket, Held::OnDisk)?.0);
    }
    report(&mut figures, "join_ms", median_ms(joins), "ms");
    // The same as people run it: the whole `convene sync` process.
    let commands = sync_commands(
        &bin,
        joiner.root(),
        &serve.ticket,
        options.runs.min(3),
        &empty_joiner,
    )?;
    report(&mut figures, "join_command_ms", median_ms(commands), "ms");
    report(&mut figures, "serve_rss_mb", serve.peak_rss_mb()?, "MiB");

    // Ten peers post 100 comments each at once, then sync through serve.
    let homes: Vec<convene::store::Home> = (0..10)
        .map(|i| convene::store::Home::new(community.members[i].home.root()))
        .collect();
    for i in 1..10 {
        community.copy_to(i)?;
    }
    converge::post_everywhere(&homes, &community.threads[1], 100)?;
    let (took, rounds) = converge::until_identical(&homes, &serve.ticket)?;
    report(
        &mut figures,
        "converge_ms_10peers",
        took.as_secs_f64() * 1000.0,
        "ms",
    );
    report(
        &mut figures,
        "converge_rounds_10peers",
        rounds as f64,
        "count",
    );
    report(
        &mut figures,
        "serve_rss_mb_after_converge",
        serve.peak_rss_mb()?,
        "MiB",
    );
    drop(serve);

    if options.keep.is_some() {
        eprintln!("bench: the homes are kept in {}", root.keep().display());
    }
    if let Some(path) = &options.docs {
        write_docs(path, &options, &figures)?;
        eprintln!("bench: wrote {}", path.display());
    }
    Ok(())
}

/// Replace the generated block of docs/performance.md with these figures.
fn write_docs(path: &PathBuf, options: &Options, figures: &[Figure]) -> anyhow::Result<()> {
    const BEGIN: &str = "<!-- bench:begin -->";
    const END: &str = "<!-- bench:end -->";
    let machine = format!(
        "{} cores, {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| c
                .lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string()))
            .unwrap_or_else(|| "unknown CPU".into())
    );
    let mut block = format!(
        "{BEGIN}\nMachine: {machine}. Command: `cargo run --release --example bench -- --comments {} --edits {} --runs {}`{}\n\n| figure | value | unit |\n|---|---|---|\n",
        options.comments,
        options.edits,
        options.runs,
        if options.quick { " --quick" } else { "" },
    );
    for f in figures {
        block.push_str(&format!("| `{}` | {} | {} |\n", f.figure, f.value, f.unit));
    }
    block.push_str(END);
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let updated = match (text.find(BEGIN), text.find(END)) {
        (Some(b), Some(e)) if e > b => format!("{}{}{}", &text[..b], block, &text[e + END.len()..]),
        _ => format!("{text}\n## Latest run\n\n{block}\n"),
    };
    std::fs::write(path, updated)?;
    Ok(())
}
