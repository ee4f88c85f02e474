//! The Tabswarm relay: one axum binary a relay operator runs on a small VPS.
//!
//! It serves the page (`web/dist`, built by `cargo xtask build`), the base checkpoint and
//! `/healthz`, and runs the swarm's libp2p node in the same process ([`swarm`]: WebRTC for tabs,
//! TCP between relays and for native peers, gossipsub in validation mode), with `/api/bootstrap`,
//! `/api/swarm` and `/metrics` over HTTP. [`ledger`] keeps who is bound to which wallet and what each
//! contributed (`POST /api/bindings`, `/api/leaderboard`, `/api/peer/<id>`), and [`chain`] records
//! bindings and round totals in the `SwarmRegistry` contract when given an RPC endpoint.
//! [`model`] runs the swarm model: peers' updates in, a new version out every outer step, kept on
//! disk and served like the base (`GET /api/model`, `POST /api/model/updates`).
//! `main.rs` holds configuration and wiring, [`http`] the router and handlers, [`assets`] the static
//! files, [`checkpoint`] the base model, [`embedded`] both built into the binary (`cargo xtask
//! dist`), [`error`] what can go wrong.

pub mod assets;
pub mod chain;
pub mod checkpoint;
pub mod embedded;
pub mod error;
pub mod http;
pub mod ledger;
pub mod limits;
pub mod model;
pub mod swarm;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use assets::AssetStore;
pub use checkpoint::BaseCheckpoint;
pub use error::StartError;
pub use http::{AppState, app};
use tokio::net::TcpListener;

/// How long open connections get to finish after a shutdown signal before the relay exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Where the relay reads the page, or the base checkpoint, from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A folder (the page: a built `web/dist`) or a file (the base checkpoint).
    Path(PathBuf),
    /// Built into this binary ([`embedded`]; `cargo xtask dist`).
    Embedded,
}

impl From<PathBuf> for Source {
    fn from(path: PathBuf) -> Self {
        Self::Path(path)
    }
}

/// What the relay needs to start.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub listen: SocketAddr,
    /// The built page.
    pub assets: Source,
    /// The swarm's base model; with it the relay also runs the swarm model that starts from it
    /// ([`model`]).
    pub base_checkpoint: Option<Source>,
    /// How the swarm model is run.
    pub model: model::ModelSettings,
    /// Mirror this relay's swarm model instead of running one (`--model-from`).
    pub model_from: Option<String>,
    /// The libp2p node.
    pub swarm: swarm::SwarmConfig,
    /// The registry to submit bindings and round totals to (`--rpc-url`, `--registry`); the
    /// swarm's binding domain must name its chain and address. None: the ledger alone.
    pub chain: Option<chain::Chain>,
    /// Which sites may frame the widget's page, `/embed` (`--embed-from`; default any).
    pub embedders: http::embed::Embedders,
}

/// A relay whose socket is bound and whose assets are loaded, ready to [`Relay::serve`].
#[derive(Debug)]
pub struct Relay {
    listener: TcpListener,
    state: AppState,
    event_loop: swarm::EventLoop,
    round_secs: u64,
}

impl Relay {
    /// Loads the assets, then binds the listen address (so a missing build is reported before a
    /// port conflict, and nothing is left listening on failure).
    pub async fn bind(config: &RelayConfig) -> Result<Self, StartError> {
        if let Some(chain) = &config.chain {
            let domain = &config.swarm.domain;
            if domain.chain_id != chain.chain_id() || domain.verifying_contract != chain.registry() {
                return Err(StartError::Chain(format!(
                    "bindings would name chain {} and contract {}, but the registry is {} on chain {}",
                    domain.chain_id,
                    domain.verifying_contract,
                    chain.registry(),
                    chain.chain_id()
                )));
            }
        }
        let assets = match &config.assets {
            Source::Path(dir) => AssetStore::load(dir)?,
            Source::Embedded => embedded::page()?,
        };
        let base_checkpoint = match &config.base_checkpoint {
            Some(Source::Path(path)) => Some(std::sync::Arc::new(BaseCheckpoint::load(path)?)),
            Some(Source::Embedded) => Some(std::sync::Arc::new(embedded::base()?)),
            None => None,
        };
        writable_data_dir(&config.swarm.data_dir)?;
        let ledger = ledger::Ledger::open(&config.swarm.data_dir.join(ledger::LEDGER_FILE))?;
        let model_mirror = match &config.model_from {
            Some(url) => Some(model::mirror::ModelMirror::new(url).map_err(StartError::Model)?),
            None => None,
        };
        let model = match &base_checkpoint {
            Some(_) if model_mirror.is_some() => None,
            Some(base) => {
                let mut settings = config.model.clone();
                settings.outer.accept_unbound |= config.swarm.accept_unbound;
                Some(model::ModelStore::open(&config.swarm.data_dir, base.bytes(), settings)?)
            }
            None => None,
        };
        let listener = TcpListener::bind(config.listen).await.map_err(|e| StartError::bind(config.listen, &e))?;
        let mut registry = prometheus_client::registry::Registry::with_prefix("tabswarm");
        let refusals = limits::HttpRefusals::register(&mut registry);
        let limits = http::limit::RequestLimits::new(std::sync::Arc::new(config.swarm.limits.clone()), refusals);
        let (handle, event_loop) = swarm::start_with_registry(&config.swarm, ledger.clone(), registry).await?;
        let state = AppState {
            assets,
            base_checkpoint,
            swarm: Some(handle),
            ledger: Some(ledger),
            domain: config.swarm.domain.clone(),
            chain: config.chain.clone(),
            model,
            model_mirror,
            embedders: config.embedders.clone(),
            limits,
        };
        Ok(Self { listener, state, event_loop, round_secs: config.swarm.round_secs })
    }

    /// The ledger (bindings, contributions, refusals).
    pub fn ledger(&self) -> Option<&ledger::Ledger> {
        self.state.ledger.as_ref()
    }

    /// The libp2p node's handle (answers once [`Relay::serve`] runs).
    pub fn swarm(&self) -> Option<&swarm::SwarmHandle> {
        self.state.swarm.as_ref()
    }

    /// The bootstrap list as it stands at start (this relay's swarm addresses).
    pub fn bootstrap(&self) -> tabswarm_protocol::api::Bootstrap {
        self.event_loop.bootstrap()
    }

    /// The swarm model (with a base checkpoint).
    pub fn model(&self) -> Option<&model::ModelStore> {
        self.state.model.as_ref()
    }

    /// What the relay serves as the base checkpoint, if anything.
    pub fn base_checkpoint(&self) -> Option<&checkpoint::BaseInfo> {
        self.state.base_checkpoint.as_deref().map(BaseCheckpoint::info)
    }

    /// The address actually bound (differs from the configured one when the port was 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then lets open requests finish for up to
    /// [`SHUTDOWN_GRACE`].
    /// The libp2p node stops with the HTTP server.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (swarm_stop_tx, swarm_stop_rx) = tokio::sync::oneshot::channel::<()>();
        let swarm = tokio::spawn(self.event_loop.run(async move {
            let _ = swarm_stop_rx.await;
        }));
        let submitter = match (&self.state.chain, &self.state.ledger) {
            (Some(chain), Some(ledger)) => Some(tokio::spawn(chain.clone().run_submitter(
                ledger.clone(),
                self.state.domain.clone(),
                self.round_secs,
                chain.submit_every(),
            ))),
            _ => None,
        };
        let model_timer = self.state.model.clone().map(|model| {
            let evaluate = model.clone();
            // The current version's held-out accuracy, off the async threads (the base at first).
            tokio::task::spawn_blocking(move || {
                if let Err(e) = evaluate.evaluate_current() {
                    tracing::warn!("cannot evaluate the swarm model: {e}");
                }
            });
            if let Some(swarm) = self.state.swarm.clone() {
                tokio::spawn(announce_versions(model.clone(), swarm));
            }
            tokio::spawn(model.run_timer())
        });
        let limits = self.state.limits.limits().clone();
        let refusals = self.state.limits.refusals().clone();
        let server = http::server::serve(self.listener, app(self.state), limits, refusals, async move {
            shutdown.await;
            let _ = swarm_stop_tx.send(());
            let _ = stop_tx.send(());
        });
        let mut server = std::pin::pin!(server);
        let result = tokio::select! {
            result = &mut server => result,
            () = async { let _ = stop_rx.await; tokio::time::sleep(SHUTDOWN_GRACE).await } => {
                tracing::warn!("connections still open {SHUTDOWN_GRACE:?} after shutdown began; exiting anyway");
                Ok(())
            }
        };
        swarm.abort();
        if let Some(submitter) = submitter {
            submitter.abort();
        }
        if let Some(timer) = model_timer {
            timer.abort();
        }
        result
    }
}

/// Creates the data folder if missing and checks that it can be written, so a read-only one is
/// named at start rather than met as an SQLite error on the first write.
fn writable_data_dir(dir: &std::path::Path) -> Result<(), StartError> {
    let fail = |reason: String| StartError::DataDir { path: dir.to_path_buf(), reason };
    std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create it: {e}")))?;
    let probe = dir.join(".tabswarm-write-test");
    let written = std::fs::write(&probe, b"").and_then(|()| std::fs::remove_file(&probe));
    written.map_err(|e| match e.kind() {
        std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied => fail(format!(
            "it cannot be written ({e}): the relay keeps its key, certificate, ledger and swarm model there; \
             give it a writable --data-dir (TABSWARM_DATA_DIR)"
        )),
        _ => fail(format!("cannot write in it: {e}")),
    })
}

/// Resolves on Ctrl-C or (on Unix) SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing open requests");
}

/// Announces each version `model` makes over gossip, until the swarm stops.
async fn announce_versions(model: model::ModelStore, swarm: swarm::SwarmHandle) {
    let mut versions = model.versions();
    while versions.changed().await.is_ok() {
        let Some(lineage) = versions.borrow_and_update().clone() else { continue };
        if swarm.announce_version(model.root(), &lineage).await.is_err() {
            return;
        }
    }
}
