use clap::Parser;
use flaredb_server::{
    config::{Config, Flags},
    server,
};
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cfg = match Config::from_flags(Flags::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("flaredb-server: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cfg.log));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let span = tracing::info_span!("node", id = cfg.id);
    match server::run(cfg, server::shutdown_signal()).instrument(span).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flaredb-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
