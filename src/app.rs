//! Wiring only: [`build_ctx`] makes the [`Ctx`] every stage shares — the store, one client per
//! outside system, the assistant and the runner the configuration picks — and [`App::start`]
//! recovers from an earlier crash, then runs the HTTP server, alert intake, the outbox runner,
//! the approval clock and (when configured) Socket Mode until [`RunningApp::stop`].

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::clients::elastic::ElasticClient;
use crate::clients::kibana::KibanaHttp;
use crate::clients::kibana::cases::CasesClient;
use crate::clients::slack::SlackClient;
use crate::config::Settings;
use crate::pipeline::Ctx;
use crate::pipeline::triage::prompt::Prompts;
use crate::runners::CommandRunner;
use crate::shutdown::{self, ShutdownTrigger};
use crate::store::Store;

/// Builds the shared context: the backend is configuration (`ASSISTANT=kibana|agent_builder|
/// openai`), and so is the runner of each host group, unless a test or the demo hands one in.
pub async fn build_ctx(
    settings: Settings,
    runner: Option<Arc<dyn CommandRunner>>,
) -> anyhow::Result<Ctx> {
    // A bad policy file stops start-up here, with its line and column.
    let policy = crate::pipeline::policy::Engine::from_settings(&settings)?;
    let mut store = Store::connect(settings.database_url.expose()).await?;
    if let Some(name) = &settings.replica_name {
        store = store.named(name);
    }
    let replica = crate::store::Replica::join(&store).await?;
    let prompts = Prompts::load(&settings)?;
    let kibana = KibanaHttp::new(&settings.kibana)?;
    Ok(Ctx {
        elastic: ElasticClient::new(&settings.elastic)?,
        assistant: crate::clients::ai::build(&settings)?,
        cases: CasesClient::new(kibana),
        slack: SlackClient::new(&settings.slack.api_url, settings.slack.bot_token.clone())?,
        runner: match runner {
            Some(r) => r,
            None => crate::runners::build(&settings)?,
        },
        prompts,
        store,
        replica,
        settings,
        wake: Notify::new(),
        health: Default::default(),
        handler_question: tokio::sync::Mutex::new(()),
        policy,
    })
}

pub struct App;

/// How often a replica checks the connection that holds its liveness lock (PostgreSQL).
const LIVENESS_CHECK: std::time::Duration = std::time::Duration::from_secs(2);

/// A started service.
pub struct RunningApp {
    pub addr: SocketAddr,
    /// Where `/metrics` is served when `METRICS_BIND` is set.
    pub metrics_addr: Option<SocketAddr>,
    pub ctx: Arc<Ctx>,
    trigger: ShutdownTrigger,
    tasks: Vec<JoinHandle<()>>,
    /// Watches this replica's liveness until the tasks above have stopped.
    liveness: JoinHandle<()>,
}

impl App {
    /// Builds everything and starts serving on `settings.http_bind`.
    pub async fn start(
        settings: Settings,
        runner: Option<Arc<dyn CommandRunner>>,
    ) -> anyhow::Result<RunningApp> {
        let ctx = Arc::new(build_ctx(settings, runner).await?);
        crate::workers::recover(&ctx)
            .await
            .context("start-up recovery failed")?;
        // Kibana's maintenance windows before the first poll, so none is missed at start (the
        // policy clock re-reads them every minute); a slow Kibana does not hold start-up long.
        let read = crate::pipeline::policy::refresh_kibana_windows(&ctx);
        if let Ok(Err(e)) = tokio::time::timeout(std::time::Duration::from_secs(10), read).await {
            tracing::warn!(error = %e, "Kibana maintenance windows not read at start");
        }
        let listener = tokio::net::TcpListener::bind(ctx.settings.http_bind)
            .await
            .with_context(|| format!("cannot listen on HTTP_BIND={}", ctx.settings.http_bind))?;
        let addr = listener.local_addr()?;
        // Slack expects an interaction's answer within 3 s and a webhook push waits on ours: a
        // response written in pieces must not wait on Nagle's algorithm for a delayed ACK.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let (trigger, shutdown) = shutdown::channel();
        let router = crate::http::router(ctx.clone());
        let mut http_shutdown = shutdown.clone();
        let socket_shutdown = shutdown.clone();
        let mut tasks = vec![
            tokio::spawn(async move {
                let serve = axum::serve(listener, router)
                    .with_graceful_shutdown(async move { http_shutdown.wait().await });
                if let Err(e) = serve.await {
                    tracing::error!(error = %e, "HTTP server stopped");
                }
            }),
            tokio::spawn(crate::workers::intake::run(ctx.clone(), shutdown.clone())),
            tokio::spawn(crate::workers::intake::run_index_action(
                ctx.clone(),
                shutdown.clone(),
            )),
            tokio::spawn(crate::workers::timers::approval_clock(
                ctx.clone(),
                shutdown.clone(),
            )),
            tokio::spawn(crate::workers::timers::policy_clock(
                ctx.clone(),
                shutdown.clone(),
            )),
            tokio::spawn(crate::workers::recover::sweep(
                ctx.clone(),
                shutdown.clone(),
            )),
            tokio::spawn(crate::workers::run_outbox(ctx.clone(), shutdown)),
        ];
        // A replica that can no longer prove it is alive may already have its jobs taken over
        // by the others: it stops at once, as a crash would, and its orchestrator restarts it.
        let watched = ctx.clone();
        let liveness = tokio::spawn(async move {
            let e = watched.replica.lost(LIVENESS_CHECK).await;
            tracing::error!(error = %e, "ReplicaLost: stopping now so that no job runs twice");
            std::process::exit(70);
        });
        let mut metrics_addr = None;
        if let Some(bind) = ctx.settings.metrics_bind {
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .with_context(|| format!("cannot listen on METRICS_BIND={bind}"))?;
            metrics_addr = Some(listener.local_addr()?);
            let router = crate::http::metrics_router(ctx.clone());
            let mut stop = socket_shutdown.clone();
            tasks.push(tokio::spawn(async move {
                let serve = axum::serve(listener, router)
                    .with_graceful_shutdown(async move { stop.wait().await });
                if let Err(e) = serve.await {
                    tracing::error!(error = %e, "metrics server stopped");
                }
            }));
        }
        if ctx.settings.approval.transport == crate::config::SlackTransport::Socket {
            let token = ctx
                .settings
                .approval
                .app_token
                .clone()
                .context("SLACK_APP_TOKEN is required for Socket Mode")?;
            let app_client = SlackClient::new(&ctx.settings.slack.api_url, token)?;
            tasks.push(tokio::spawn(crate::slack_app::socket_mode::run(
                ctx.clone(),
                app_client,
                socket_shutdown,
            )));
        }
        tracing::info!(http.addr = %addr, "triage-bot started");
        Ok(RunningApp {
            addr,
            metrics_addr,
            ctx,
            trigger,
            tasks,
            liveness,
        })
    }
}

impl RunningApp {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting work and lets work in flight finish and record its outcome, for at most
    /// `SHUTDOWN_GRACE_SECS`; what is still running then is cut off (a command batch cut off is
    /// resumed at the next start — the running command's outcome collected from its host —
    /// never silently re-run).
    pub async fn stop(self) {
        let grace = self.ctx.settings.shutdown_grace;
        self.trigger.trigger();
        let mut tasks = self.tasks;
        let all_done = async {
            for t in tasks.iter_mut() {
                let _ = t.await;
            }
        };
        if tokio::time::timeout(grace, all_done).await.is_err() {
            tracing::warn!(
                grace_secs = grace.as_secs_f64(),
                "ShutdownGraceExpired: work still in flight was cut off; it is recovered at the next start"
            );
            // A command still running on a host is left there, not terminated halfway: the
            // next start collects its outcome (`pipeline::execute::resume_interrupted`).
            self.ctx.runner.leave_running_on_cancel();
            for t in &tasks {
                t.abort();
            }
        }
        self.liveness.abort();
        self.ctx.store.pool.close().await;
    }
}
