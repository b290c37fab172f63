//! The command line: the contract of `../shared/CLI.md`.
//!
//! One file per command group; this file declares the arguments, runs the
//! chosen command and maps every error to an exit code in one place:
//! 0 success, 1 failed, 2 usage, 3 partial, 4 integrity or security.

mod bundle;
mod community;
mod demo;
mod device;
mod discuss;
mod doctor;
mod draft;
mod examples;
mod identity;
mod inbox;
mod input;
mod invite;
mod log;
mod output;
mod peer;
mod progress;
mod publish;
mod qr;
mod respond;
mod serve;
mod session;
mod stance;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use output::Ctx;

/// convene: a community of practice co-authors its joint response.
#[derive(Debug, Parser)]
#[command(name = "convene", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    /// Where identity and communities live [default: the platform data dir]
    #[arg(long, env = "CONVENE_HOME", global = true, value_name = "DIR")]
    home: Option<PathBuf>,
    /// Which community: id, unique id prefix or name [default: the current one]
    #[arg(short = 'c', long, global = true, value_name = "ID")]
    community: Option<String>,
    /// Print one JSON document on stdout and nothing else there
    #[arg(long, global = true)]
    json: bool,
    /// No progress or hints on stderr
    #[arg(short = 'q', long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create this device's member and device keys
    Init {
        /// Your name, as other members will see it
        #[arg(long)]
        name: String,
    },
    /// Show who you are on this device
    Whoami,
    /// Create, list and choose communities
    #[command(subcommand)]
    Community(CommunityCommand),
    /// List members: names, roles, devices
    Members,
    /// Print an invite ticket for one new member (facilitators)
    ///
    /// The ticket admits one person once, until it expires; give it to them
    /// privately.
    Invite {
        /// The new member's role
        #[arg(long, value_enum, default_value = "member")]
        role: RoleArg,
        /// How long the invite stays valid: 30m, 12h, 7d, 2w
        #[arg(long, default_value = "7d")]
        expires: String,
        /// This device's address to put in the ticket [default: where `serve` listens]
        #[arg(long, value_name = "IP:PORT")]
        addr: Vec<std::net::SocketAddr>,
        /// Also draw the ticket as a QR code, for a phone camera or a webcam
        #[arg(long)]
        qr: bool,
    },
    /// Join a community with an invite ticket
    Join {
        /// The invite ticket
        ticket: String,
        /// Local address to bind
        #[arg(long, default_value = "0.0.0.0:0", value_name = "ADDR")]
        bind: std::net::SocketAddr,
        /// Seconds of silence before giving up
        #[arg(long, default_value_t = 30, value_name = "SECS")]
        timeout: u64,
    },
    /// Remove a member (facilitators); their later changes are refused
    Remove {
        /// Member id prefix or name
        member: String,
        /// Why, for the record
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Add a second device of the same member
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Carry the community in a file, with no network at all
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// Print this device's ticket, to give to a peer
    Ticket {
        /// The address to put in the ticket [default: where `serve` listens]
        #[arg(long, value_name = "IP:PORT")]
        addr: Vec<std::net::SocketAddr>,
    },
    /// Accept peers and keep them in sync until Ctrl-C
    Serve {
        /// Address to listen on
        #[arg(long, default_value = "0.0.0.0:0", value_name = "ADDR")]
        bind: std::net::SocketAddr,
        /// Do not announce this device or look for peers on the local
        /// network (mDNS); always off when --bind is a loopback address
        #[arg(long)]
        no_mdns: bool,
        /// Relay: off, default (iroh's public relays) or a relay URL
        #[arg(long, default_value = "off")]
        relay: String,
        /// Seconds of silence before a session is dropped
        #[arg(long, default_value_t = 30, value_name = "SECS")]
        timeout: u64,
    },
    /// One sync round with the given or all known peers, then exit
    Sync {
        /// Peer tickets or known peer id prefixes [default: all known peers]
        peers: Vec<String>,
        /// Seconds of silence before giving up on a peer
        #[arg(long, default_value_t = 30, value_name = "SECS")]
        timeout: u64,
        /// Local address to bind
        #[arg(long, default_value = "0.0.0.0:0", value_name = "ADDR")]
        bind: std::net::SocketAddr,
        /// Relay: off, default or a relay URL
        #[arg(long, default_value = "off")]
        relay: String,
    },
    /// Open a response to an external development or a request for opinion
    #[command(subcommand)]
    Open(OpenCommand),
    /// List responses: id, kind, title, status, due, counts
    Responses,
    /// Show everything about one response
    Show {
        /// Response id (or unique prefix)
        response: String,
    },
    /// Start a thread on a response
    Thread {
        /// Response id (or unique prefix)
        response: String,
        /// Thread title
        title: String,
        /// A first comment ('-' reads stdin)
        #[arg(short = 'm', long = "message", value_name = "TEXT")]
        message: Option<String>,
    },
    /// Post a comment in a thread
    Post {
        /// Thread id (or unique prefix)
        thread: String,
        /// The comment ('-' reads stdin)
        #[arg(short = 'm', long = "message", value_name = "TEXT")]
        message: String,
        /// Reply to this comment (id or unique prefix within the thread)
        #[arg(long, value_name = "COMMENT")]
        reply_to: Option<String>,
        /// Facilitators: record it for a member without a device (name or id
        /// prefix); it is marked so everywhere, and they can confirm it later
        #[arg(long, value_name = "MEMBER")]
        on_behalf_of: Option<String>,
    },
    /// Confirm, or correct, a comment a facilitator recorded on your behalf
    Confirm {
        /// Comment id (or unique prefix)
        comment: String,
        /// Your corrected wording ('-' reads stdin)
        #[arg(long, value_name = "TEXT")]
        correct: Option<String>,
    },
    /// Write drafts of the response
    #[command(subcommand)]
    Draft(DraftCommand),
    /// Propose an amendment to a draft, or accept or reject one
    Amend(AmendArgs),
    /// Take a stance on a draft
    Stance {
        /// Draft id (or unique prefix)
        draft: String,
        /// Your stance
        stance: StanceArg,
        /// Your reason (required for stand-aside and object; '-' reads stdin)
        #[arg(short = 'm', long = "message", value_name = "REASON")]
        reason: Option<String>,
        /// Facilitators: record it for a member without a device (name or id
        /// prefix); their own stance, taken later, replaces it
        #[arg(long, value_name = "MEMBER")]
        on_behalf_of: Option<String>,
    },
    /// What arrived since you last looked, per response
    ///
    /// New responses, comments and replies, draft changes with a short
    /// diff, stances, amendments, publications, and deadlines within 3 days
    /// or passed.
    Inbox {
        /// Mark everything shown as read (it is not shown again)
        #[arg(long)]
        mark_read: bool,
    },
    /// Show the range of views, who has not yet been heard, and share of voice
    Tally {
        /// Response id (or unique prefix)
        response: String,
    },
    /// Publish the response with an adopted draft (facilitators only)
    Publish {
        /// Response id (or unique prefix)
        response: String,
        /// The adopted draft
        #[arg(long)]
        draft: String,
    },
    /// Endorse a published response with your signature and stance
    Endorse {
        /// Response id (or unique prefix)
        response: String,
        /// The stance to sign with [default: your current stance on the adopted draft]
        #[arg(long)]
        stance: Option<StanceArg>,
    },
    /// Export a published response for people (md) or machines (json), or
    /// any response's comments and stances as a table (csv)
    ///
    /// csv has one row per comment and per stance (columns in
    /// docs/schema.md) and works before publication too.
    Export {
        /// Response id (or unique prefix)
        response: String,
        /// Output format [default: md, or json with --json]
        #[arg(long, value_enum)]
        format: Option<ExportFormat>,
        /// Write to a file instead of stdout
        #[arg(short = 'o', long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Check an exported response and its signatures offline
    Verify {
        /// The exported file (.json or .md)
        file: PathBuf,
    },
    /// Show who changed what, when
    Log,
    /// Check every file of this home, say what is damaged and how to recover it
    ///
    /// Nothing is changed. Exit 4 if a file is damaged.
    Doctor,
    /// Run a whole joint response among simulated members, each in their own home, over iroh on 127.0.0.1
    Demo,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum CommunityCommand {
    /// Found a community; prints its id and makes it current
    Create {
        /// Its name
        name: String,
        /// What it is for
        #[arg(long, default_value = "")]
        purpose: String,
    },
    /// List the communities in this home
    List,
    /// Make a community current
    Use {
        /// Id, unique id prefix or name
        community: String,
    },
    /// Write each raw Automerge document of the community to a folder
    ///
    /// One `<name>.automerge` file per document, which any Automerge
    /// implementation can open; the schema is in docs/schema.md. The files
    /// carry no signatures.
    ExportDoc {
        /// The folder (created if missing; files of the same name are replaced)
        #[arg(short = 'o', long, value_name = "DIR")]
        output: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum BundleCommand {
    /// Write certificates and signed changes to a file
    Export {
        /// The file ('-' writes to stdout) [default: convene-<community>.bundle]
        #[arg(short = 'o', long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Only what this member (id prefix or name) is not known to have
        #[arg(long = "for", value_name = "MEMBER")]
        for_member: Option<String>,
    },
    /// Verify a bundle and apply what it holds (all checks before any write)
    Import {
        /// The bundle file
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum DeviceCommand {
    /// On a device you already use: print a one-time link ticket
    Link {
        /// How long the ticket stays valid: 30m, 12h, 7d
        #[arg(long, default_value = "30m")]
        expires: String,
        /// This device's address to put in the ticket [default: where `serve` listens]
        #[arg(long, value_name = "IP:PORT")]
        addr: Vec<std::net::SocketAddr>,
    },
    /// On the new device (a fresh home): join as the same member
    Add {
        /// The link ticket
        ticket: String,
        /// Local address to bind
        #[arg(long, default_value = "0.0.0.0:0", value_name = "ADDR")]
        bind: std::net::SocketAddr,
        /// Seconds of silence before giving up
        #[arg(long, default_value_t = 30, value_name = "SECS")]
        timeout: u64,
    },
}

#[derive(Debug, Subcommand)]
enum OpenCommand {
    /// A position on an external development (policy, technology, management)
    Development {
        /// Title
        title: String,
        /// What changed and why it matters ('-' reads stdin)
        #[arg(long)]
        summary: String,
        /// Where it was announced
        #[arg(long, value_name = "URL")]
        source: Option<String>,
    },
    /// An answer to a request for opinion from an outside actor
    Request {
        /// Title
        title: String,
        /// Who asks
        #[arg(long = "from", value_name = "ACTOR")]
        requester: String,
        /// A question they ask (repeat for several)
        #[arg(long = "question", value_name = "TEXT", required = true)]
        questions: Vec<String>,
        /// Reply-by date
        #[arg(long, value_name = "YYYY-MM-DD")]
        due: String,
        /// Context
        #[arg(long, default_value = "")]
        summary: String,
    },
}

#[derive(Debug, Subcommand)]
enum DraftCommand {
    /// Start a draft on a response
    New {
        /// Response id (or unique prefix)
        response: String,
        /// Draft title
        title: String,
        #[command(flatten)]
        text: TextSource,
    },
    /// Replace a draft's text (through a diff, so concurrent edits merge)
    Edit {
        /// Draft id (or unique prefix)
        draft: String,
        #[command(flatten)]
        text: TextSource,
    },
    /// Print a draft's text
    Show {
        /// Draft id (or unique prefix)
        draft: String,
    },
}

/// Where text comes from: a file or -m.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct TextSource {
    /// Read the text from a file ('-' reads stdin)
    #[arg(long, value_name = "F")]
    file: Option<PathBuf>,
    /// The text ('-' reads stdin)
    #[arg(short = 'm', long = "message", value_name = "TEXT")]
    message: Option<String>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct AmendArgs {
    #[command(subcommand)]
    decision: Option<AmendDecision>,
    /// Draft id (or unique prefix)
    #[arg(required = true)]
    draft: Option<String>,
    /// Text to find in the draft
    #[arg(long, required = true)]
    find: Option<String>,
    /// Text to put in its place
    #[arg(long, required = true)]
    replace: Option<String>,
    /// Why ('-' reads stdin)
    #[arg(
        short = 'm',
        long = "message",
        value_name = "RATIONALE",
        required = true
    )]
    rationale: Option<String>,
}

#[derive(Debug, Subcommand)]
enum AmendDecision {
    /// Apply an amendment to its draft
    Accept {
        /// Amendment id (or unique prefix)
        amendment: String,
    },
    /// Keep an amendment on record without applying it
    Reject {
        /// Amendment id (or unique prefix)
        amendment: String,
    },
}

/// A stance on a draft.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum StanceArg {
    /// In favour
    Support,
    /// In favour, with reservations
    Reservations,
    /// Will not block, but does not join (reason required)
    StandAside,
    /// Against (reason required)
    Object,
    /// No position
    Abstain,
}

/// A role given by an invite.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum RoleArg {
    /// Discuss, draft, take stances, endorse
    Member,
    /// Also open, publish, invite, remove
    Facilitator,
    /// Read only
    Observer,
}

impl From<RoleArg> for crate::trust::Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Member => crate::trust::Role::Member,
            RoleArg::Facilitator => crate::trust::Role::Facilitator,
            RoleArg::Observer => crate::trust::Role::Observer,
        }
    }
}

/// What `export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Markdown for people, with the proof block.
    Md,
    /// The signed export for machines.
    Json,
    /// One row per comment and stance, for spreadsheets.
    Csv,
}

/// Parse the process arguments, run, and return the exit code.
pub fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let parsed = examples::with_examples(Cli::command())
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let code = e.exit_code();
            let _ = e.print();
            return ExitCode::from(u8::try_from(code).unwrap_or(2));
        }
    };
    init_tracing(cli.quiet);
    let ctx = match Ctx::new(cli.home.clone(), cli.community.clone(), cli.json, cli.quiet) {
        Ok(ctx) => ctx,
        Err(e) => return output::report(&e, cli.quiet),
    };
    match run(&ctx, cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => output::report(&e, cli.quiet),
    }
}

/// Warnings (errors with `-q`) on stderr; `CONVENE_LOG` (an `EnvFilter`
/// such as `debug` or `convene=trace`) asks for more, with the time since
/// the start of the process on each line, to see where time goes.
fn init_tracing(quiet: bool) {
    let default = if quiet { "error" } else { "warn" };
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match tracing_subscriber::EnvFilter::try_from_env("CONVENE_LOG") {
        Ok(filter) => builder
            .with_env_filter(filter)
            .with_timer(tracing_subscriber::fmt::time::uptime())
            .try_init(),
        Err(_) => builder
            .with_env_filter(tracing_subscriber::EnvFilter::new(default))
            .without_time()
            .try_init(),
    };
}

/// Run one parsed command.
fn run(ctx: &Ctx, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init { name } => identity::init(ctx, &name),
        Command::Whoami => identity::whoami(ctx),
        Command::Community(c) => match c {
            CommunityCommand::Create { name, purpose } => community::create(ctx, &name, &purpose),
            CommunityCommand::List => community::list(ctx),
            CommunityCommand::Use { community } => community::select(ctx, &community),
            CommunityCommand::ExportDoc { output } => community::export_docs(ctx, &output),
        },
        Command::Members => community::members(ctx),
        Command::Invite {
            role,
            expires,
            addr,
            qr,
        } => invite::invite(ctx, role.into(), &expires, &addr, qr),
        Command::Join {
            ticket,
            bind,
            timeout,
        } => invite::join(ctx, &ticket, bind, &crate::net::RelayChoice::Off, timeout),
        Command::Remove { member, reason } => invite::remove(ctx, &member, &reason),
        Command::Ticket { addr } => peer::ticket(ctx, &addr),
        Command::Bundle(b) => match b {
            BundleCommand::Export { output, for_member } => {
                bundle::export(ctx, output.as_deref(), for_member.as_deref())
            }
            BundleCommand::Import { file } => bundle::import(ctx, &file),
        },
        Command::Device(d) => match d {
            DeviceCommand::Link { expires, addr } => device::link(ctx, &expires, &addr),
            DeviceCommand::Add {
                ticket,
                bind,
                timeout,
            } => device::add(ctx, &ticket, bind, timeout),
        },
        Command::Serve {
            bind,
            no_mdns,
            relay,
            timeout,
        } => {
            let relay = crate::net::RelayChoice::parse(&relay).map_err(output::usage)?;
            // Announcing loopback addresses on the LAN would help nobody.
            let lan = !no_mdns && !bind.ip().is_loopback();
            serve::serve(ctx, bind, &relay, timeout, lan)
        }
        Command::Sync {
            peers,
            timeout,
            bind,
            relay,
        } => {
            let relay = crate::net::RelayChoice::parse(&relay).map_err(output::usage)?;
            peer::sync(ctx, &peers, timeout, bind, &relay)
        }
        Command::Open(o) => match o {
            OpenCommand::Development {
                title,
                summary,
                source,
            } => respond::open_development(ctx, &title, &summary, source),
            OpenCommand::Request {
                title,
                requester,
                questions,
                due,
                summary,
            } => respond::open_request(ctx, &title, &requester, questions, &due, &summary),
        },
        Command::Responses => respond::list(ctx),
        Command::Show { response } => respond::show(ctx, &response),
        Command::Thread {
            response,
            title,
            message,
        } => discuss::thread(ctx, &response, &title, message.as_deref()),
        Command::Post {
            thread,
            message,
            reply_to,
            on_behalf_of,
        } => discuss::post(
            ctx,
            &thread,
            &message,
            reply_to.as_deref(),
            on_behalf_of.as_deref(),
        ),
        Command::Confirm { comment, correct } => {
            discuss::confirm(ctx, &comment, correct.as_deref())
        }
        Command::Draft(d) => match d {
            DraftCommand::New {
                response,
                title,
                text,
            } => draft::new(
                ctx,
                &response,
                &title,
                &input::text(text.file.as_deref(), text.message.as_deref())?,
            ),
            DraftCommand::Edit { draft, text } => draft::edit(
                ctx,
                &draft,
                &input::text(text.file.as_deref(), text.message.as_deref())?,
            ),
            DraftCommand::Show { draft } => draft::show(ctx, &draft),
        },
        Command::Amend(a) => match (a.decision, a.draft, a.find, a.replace, a.rationale) {
            (Some(AmendDecision::Accept { amendment }), ..) => draft::decide(ctx, &amendment, true),
            (Some(AmendDecision::Reject { amendment }), ..) => {
                draft::decide(ctx, &amendment, false)
            }
            (None, Some(d), Some(find), Some(replace), Some(rationale)) => {
                draft::amend(ctx, &d, &find, &replace, &rationale)
            }
            _ => Err(output::usage(
                "amend needs DRAFT --find TEXT --replace TEXT -m RATIONALE",
            )),
        },
        Command::Stance {
            draft,
            stance,
            reason,
            on_behalf_of,
        } => stance::take(
            ctx,
            &draft,
            stance.into(),
            reason.as_deref(),
            on_behalf_of.as_deref(),
        ),
        Command::Tally { response } => stance::tally(ctx, &response),
        Command::Inbox { mark_read } => inbox::inbox(ctx, mark_read),
        Command::Publish { response, draft } => publish::publish(ctx, &response, &draft),
        Command::Endorse { response, stance } => {
            publish::endorse(ctx, &response, stance.map(Into::into))
        }
        Command::Export {
            response,
            format,
            output,
        } => {
            let format = match format {
                Some(f) => f,
                None if ctx.json => ExportFormat::Json,
                None => ExportFormat::Md,
            };
            publish::export(ctx, &response, format, output.as_deref())
        }
        Command::Verify { file } => publish::verify(ctx, &file),
        Command::Log => log::log(ctx),
        Command::Doctor => doctor::doctor(ctx),
        Command::Demo => demo::demo(ctx),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "convene", &mut script);
            output::print_stdout(&String::from_utf8_lossy(&script))
        }
    }
}

impl From<StanceArg> for crate::model::views::Stance {
    fn from(s: StanceArg) -> Self {
        use crate::model::views::Stance;
        match s {
            StanceArg::Support => Stance::Support,
            StanceArg::Reservations => Stance::Reservations,
            StanceArg::StandAside => Stance::StandAside,
            StanceArg::Object => Stance::Object,
            StanceArg::Abstain => Stance::Abstain,
        }
    }
}

/// Run the command line with explicit arguments (the demo drives itself
/// through this, exactly as a user would).
pub fn run_args<I, T>(args: I) -> anyhow::Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::try_parse_from(args).map_err(|e| output::usage(e.to_string()))?;
    let ctx = Ctx::new(cli.home.clone(), cli.community.clone(), cli.json, cli.quiet)?;
    run(&ctx, cli.command)
}
