//! The operator restarts the service the way Docker, systemd and Kubernetes do — SIGTERM — while
//! an approved batch is running on a host. Within `SHUTDOWN_GRACE_SECS` the batch finishes and
//! is recorded as executed (a normal restart interrupts nothing), and the process exits 0. When
//! the bound runs out, the process still exits 0, the running command is left on the host, and
//! the next start collects its outcome and marks the batch interrupted — nothing is re-run on
//! its own. The same after a SIGKILL; a command the host has lost meanwhile has an unknown
//! outcome, named apart and never offered again.

use std::process::Stdio;
use std::time::Duration;

use crate::common::*;
use triage_bot::store::Store;

/// `triage-bot serve` as its own process against the emulated world, on a free port.
async fn serve(world: &World, grace: &str) -> (tokio::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_triage-bot"))
        .arg("serve")
        .env_clear()
        .envs(world.env())
        .env("HTTP_BIND", format!("127.0.0.1:{port}"))
        .env("SHUTDOWN_GRACE_SECS", grace)
        .env("RUST_LOG", "warn")
        .current_dir(&world.dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    (child, format!("http://127.0.0.1:{port}"))
}

/// Approves the card once it is posted, then waits until `n` commands have started on the host.
async fn approve_and_wait_for_commands(world: &World, url: &str, n: usize) {
    wait_for_approval_request(world).await;
    let mut clicked = false;
    for _ in 0..100 {
        // The port may take a moment to listen after the card is out.
        if let Ok((200, _)) = world
            .click_url(
                url,
                HANDLER_ID,
                ACTION_APPROVE,
                chrono::Utc::now().timestamp(),
                SIGNING_SECRET,
            )
            .await
        {
            clicked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(clicked, "the click was accepted");
    world
        .winrm
        .wait_until("commands running on the host", T, |s| s.executed.len() >= n)
        .await
        .unwrap();
}

async fn sigterm(child: &mut tokio::process::Child) -> std::process::ExitStatus {
    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the process exits within its grace period")
        .unwrap()
}

#[tokio::test]
async fn sigterm_lets_the_running_batch_finish_and_exits_zero() {
    let world = World::start().await.unwrap();
    // The third command takes a while (the host answers "still running" four times).
    world.winrm.set_timed_out_hold(Duration::from_millis(250));
    world.winrm.set_delay(COMMANDS[2].0, 4);
    let (mut child, url) = serve(&world, "30").await;
    approve_and_wait_for_commands(&world, &url, 3).await;

    let status = sigterm(&mut child).await;
    assert!(status.success(), "exit status {status:?}");

    let store = Store::connect(&world.database_url()).await.unwrap();
    let incident = store.incidents().await.unwrap().remove(0);
    assert_eq!(incident.state, IncidentState::Executed, "not interrupted");
    let commands = store.commands(&incident.id).await.unwrap();
    assert!(
        commands
            .iter()
            .all(|c| c.status == CommandStatus::Succeeded)
    );
    assert_eq!(
        world.winrm.executed().len(),
        COMMANDS.len(),
        "each ran once"
    );
}

#[tokio::test]
async fn when_the_grace_runs_out_the_batch_is_interrupted_not_rerun() {
    let world = World::start().await.unwrap();
    world.winrm.set_timed_out_hold(Duration::from_millis(500));
    world.winrm.set_delay(COMMANDS[1].0, 100);
    let (mut child, url) = serve(&world, "0.5").await;
    approve_and_wait_for_commands(&world, &url, 2).await;

    let status = sigterm(&mut child).await;
    assert!(status.success(), "exit status {status:?}");

    // The command cut off was left running on the host, not terminated halfway.
    let cut_off = world.winrm.executed()[1].command_id.clone();
    assert!(
        !world
            .winrm
            .signals()
            .iter()
            .any(|s| s.command_id == cut_off),
        "{:?}",
        world.winrm.signals()
    );
    // The next start finds the batch cut off: the command's outcome is collected from the host
    // once it finishes there, the rest waits for a fresh approval, and nothing ran again.
    world.winrm.release_running();
    let app = world.start_app().await.unwrap();
    wait_for_state(&app, IncidentState::Interrupted, T)
        .await
        .unwrap();
    let incident = app.ctx.store.incidents().await.unwrap().remove(0);
    let commands = app.ctx.store.commands(&incident.id).await.unwrap();
    assert_eq!(commands[0].status, CommandStatus::Succeeded);
    assert_eq!(commands[1].status, CommandStatus::Succeeded, "collected");
    assert!(
        commands[2..]
            .iter()
            .all(|c| c.status == CommandStatus::Skipped)
    );
    assert_eq!(world.winrm.executed().len(), 2, "nothing re-run on its own");
    app.stop().await;
}

/// `triage-bot serve` killed with SIGKILL while the third command runs on the host; the host
/// keeps the command. Returns the incident id once the process is gone.
async fn kill_mid_command(world: &World) -> String {
    world.winrm.set_timed_out_hold(Duration::from_millis(100));
    world.winrm.set_delay(COMMANDS[2].0, 1_000_000);
    let (mut child, url) = serve(world, "30").await;
    approve_and_wait_for_commands(world, &url, 3).await;
    child.kill().await.unwrap();
    let store = Store::connect(&world.database_url()).await.unwrap();
    let incident = store.incidents().await.unwrap().remove(0);
    let commands = store.commands(&incident.id).await.unwrap();
    assert_eq!(commands[2].status, CommandStatus::Running);
    assert!(
        commands[2].remote.is_some(),
        "its shell and command ids were on record before it was sent"
    );
    store.pool.close().await;
    incident.id
}

/// Approves the fresh offer in the thread and waits for its batch to finish.
async fn approve_the_offer(world: &World, app: &triage_bot::app::RunningApp, ran: usize) {
    let offer = thread_offer(world, app).await;
    approve_offer(world, app, &offer, ran).await;
}

/// How often each approved command reached the host.
fn runs_per_command(world: &World) -> Vec<usize> {
    let executed = world.winrm.executed();
    COMMANDS
        .iter()
        .map(|(c, _)| {
            executed
                .iter()
                .filter(|e| e.approved_command() == Some(*c))
                .count()
        })
        .collect()
}

#[tokio::test]
async fn after_a_sigkill_mid_command_its_outcome_is_collected_from_the_host_not_run_again() {
    let world = World::start().await.unwrap();
    let incident = kill_mid_command(&world).await;
    // The host finishes the command while triage-bot is down.
    world.winrm.release_running();

    let app = world.start_app().await.unwrap();
    wait_for_state(&app, IncidentState::Interrupted, T)
        .await
        .unwrap();
    let commands = app.ctx.store.commands(&incident).await.unwrap();
    assert_eq!(commands[2].status, CommandStatus::Succeeded, "collected");
    // Its output came from the host (a Receive in flight at the kill may have taken the
    // first chunk with it).
    let stdout = commands[2].stdout.clone().unwrap_or_default();
    assert!(
        !stdout.is_empty() && COMMANDS[2].1.ends_with(&stdout),
        "{stdout:?}"
    );
    assert!(
        commands[3..]
            .iter()
            .all(|c| c.status == CommandStatus::Skipped)
    );
    wait_for_message(&world, "the restart notice", |m| {
        m.text
            .contains("finished on the host; their results were collected")
            && m.text.contains("5 command(s) had not started")
    })
    .await;

    approve_the_offer(&world, &app, 5).await;
    assert_eq!(
        runs_per_command(&world),
        vec![1; COMMANDS.len()],
        "each ran once"
    );
    app.stop().await;
}

#[tokio::test]
async fn when_the_host_lost_the_command_its_outcome_is_unknown_and_never_offered_again() {
    let world = World::start().await.unwrap();
    let incident = kill_mid_command(&world).await;
    // The host restarts while triage-bot is down: the shell and its command are gone.
    world.winrm.forget_shells();

    let app = world.start_app().await.unwrap();
    wait_for_state(&app, IncidentState::Interrupted, T)
        .await
        .unwrap();
    let commands = app.ctx.store.commands(&incident).await.unwrap();
    assert_eq!(commands[2].status, CommandStatus::Interrupted);
    wait_for_message(&world, "the restart notice", |m| {
        m.text.contains("Outcome unknown for 1") && m.text.contains("5 command(s) had not started")
    })
    .await;

    approve_the_offer(&world, &app, 5).await;
    // The third was sent once, before the kill, and never again.
    assert_eq!(runs_per_command(&world), vec![1; COMMANDS.len()]);
    app.stop().await;
}
