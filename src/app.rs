//! Wiring: [`Ctx`] holds the store, the clients and the settings every stage shares;
//! [`App::start`] builds it, recovers from an earlier crash, and runs the HTTP server, the alert
//! pollers and the outbox workers until [`RunningApp::stop`].

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
use crate::execute::CommandRunner;
use crate::store::Store;
use crate::triage::prompt::Prompts;
use crate::workers::shutdown::{self, ShutdownTrigger};

/// Everything a stage needs.
pub struct Ctx {
    pub settings: Settings,
    pub store: Store,
    pub elastic: ElasticClient,
    pub assistant: Arc<dyn crate::triage::assistant::Assistant>,
    pub cases: CasesClient,
    pub slack: SlackClient,
    pub prompts: Prompts,
    pub runner: Arc<dyn CommandRunner>,
    /// Wakes the outbox worker when new work is queued.
    pub wake: Notify,
}

impl Ctx {
    pub async fn build(
        settings: Settings,
        runner: Option<Arc<dyn CommandRunner>>,
    ) -> anyhow::Result<Self> {
        let store = Store::connect(&settings.database_url).await?;
        let prompts = Prompts::load(&settings)?;
        let kibana = KibanaHttp::new(&settings.kibana)?;
        Ok(Self {
            elastic: ElasticClient::new(&settings.elastic)?,
            // The backend is configuration (ASSISTANT=kibana|agent_builder|openai).
            assistant: crate::triage::assistant::build(&settings)?,
            cases: CasesClient::new(kibana),
            slack: SlackClient::new(&settings.slack.api_url, settings.slack.bot_token.clone())?,
            runner: match runner {
                Some(r) => r,
                None => crate::execute::build_runner(&settings)?,
            },
            prompts,
            store,
            settings,
            wake: Notify::new(),
        })
    }
}

pub struct App;

/// A started service.
pub struct RunningApp {
    pub addr: SocketAddr,
    pub ctx: Arc<Ctx>,
    trigger: ShutdownTrigger,
    tasks: Vec<JoinHandle<()>>,
}

impl App {
    /// Builds everything and starts serving on `settings.http_bind`.
    pub async fn start(
        settings: Settings,
        runner: Option<Arc<dyn CommandRunner>>,
    ) -> anyhow::Result<RunningApp> {
        let ctx = Arc::new(Ctx::build(settings, runner).await?);
        crate::workers::recover(&ctx)
            .await
            .context("start-up recovery failed")?;
        let listener = tokio::net::TcpListener::bind(ctx.settings.http_bind)
            .await
            .with_context(|| format!("cannot listen on HTTP_BIND={}", ctx.settings.http_bind))?;
        let addr = listener.local_addr()?;
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
            tokio::spawn(crate::ingest::es_alerts::run(ctx.clone(), shutdown.clone())),
            tokio::spawn(crate::workers::expiry::run(ctx.clone(), shutdown.clone())),
            tokio::spawn(crate::workers::run_outbox(ctx.clone(), shutdown)),
        ];
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
            ctx,
            trigger,
            tasks,
        })
    }
}

impl RunningApp {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting work, lets in-flight jobs record their outcome, and returns.
    pub async fn stop(self) {
        self.trigger.trigger();
        for t in self.tasks {
            let _ = t.await;
        }
        self.ctx.store.pool.close().await;
    }
}
