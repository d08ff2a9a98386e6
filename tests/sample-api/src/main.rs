//! `prompter-sample-api`: runs the sample Prompter API until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;
use prompter_sample_api::{serve_with, SampleApi};

#[derive(Parser, Debug)]
#[command(version, about = "Sample Prompter API upstream for tests and demos")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// Start with the simulated Redis down (`/healthz` answers 503).
    #[arg(long)]
    redis_down: bool,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let api = Arc::new(SampleApi::with_redis(!args.redis_down));
    let running = serve_with(args.listen, api).await?;
    println!("prompter-sample-api listening on http://{}", running.addr);
    wait_for_signal().await?;
    running.shutdown().await;
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> std::io::Result<()> {
    tokio::signal::ctrl_c().await
}
