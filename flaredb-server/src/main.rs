use clap::Parser;
use flaredb_server::{
    config::{Command, Config, Flags},
    server,
};
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

/// glibc's malloc and free were ~8% of a leader's CPU under a 64-client
/// write load (many small, short-lived buffers across threads).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut flags = Flags::parse();
    if let Some(Command::Restore(r)) = flags.command.take() {
        return match flaredb_raft::restore::restore(&r.from, &r.data_dir, r.id, &r.listen) {
            Ok(index) => {
                // `--listen` takes the public address; a peer address goes to `--peer-listen`.
                let listen = match r.listen.split_once('@') {
                    Some((public, peer)) => format!("{public} --peer-listen {peer}"),
                    None => r.listen.clone(),
                };
                println!(
                    "restored {} into {} as node {} (applied index {index}); start it with: \
                     flaredb-server --id {} --listen {listen} --data-dir {}",
                    r.from.display(),
                    r.data_dir.display(),
                    r.id,
                    r.id,
                    r.data_dir.display()
                );
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("flaredb-server restore: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let cfg = match Config::from_flags(flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("flaredb-server: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.log));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if cfg.log_json {
        // The node id and the RPC path come from the spans each line is logged in.
        logs.json().with_current_span(true).with_span_list(true).init();
    } else {
        logs.init();
    }
    // Error level: enabled under any filter, so every line carries the node
    // id; with JSON logs also the current term (server::record_term).
    let span = tracing::error_span!("node", id = cfg.id, term = tracing::field::Empty);
    match server::run(cfg, server::shutdown_signal()).instrument(span).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flaredb-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
