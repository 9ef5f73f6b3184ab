//! The runners behind the approval, end to end: WinRM with NTLM sealing against a host
//! configured like a stock Windows, Elastic Defend response actions through Kibana, dry run
//! (shadow mode), the failure policy (stop after a failure, the batch deadline), and the
//! "Isolate host" job the Slack side calls.

use std::time::Duration;

use crate::common::*;
use emulators::kibana::endpoint::ExecuteOutput;
use emulators::winrm::EmulatorAuth;
use triage_bot::domain::Alert;

const AGENT: &str = "2b1eb7f7-bd61-436a-98af-c2b182043476";

async fn approve_and_wait(
    world: &World,
    app: &triage_bot::app::RunningApp,
    state: IncidentState,
) -> triage_bot::store::IncidentRow {
    wait_for_approval_request(world).await;
    let (status, _) = world.click(app, HANDLER_ID, ACTION_APPROVE).await.unwrap();
    assert_eq!(status, 200);
    wait_for_state(app, state, T).await.unwrap()
}

fn approved() -> Vec<String> {
    COMMANDS.iter().map(|(c, _)| c.to_string()).collect()
}

#[tokio::test]
async fn winrm_ntlm_with_sealing_on_a_stock_host() {
    let world = World::start().await.unwrap();
    // Basic off, AllowUnencrypted=false: only sealed NTLM gets in.
    world.winrm.set_auth(EmulatorAuth::stock());
    let app = world
        .start_app_with(&[("WINRM_TRANSPORT", "ntlm")])
        .await
        .unwrap();
    approve_and_wait(&world, &app, IncidentState::Executed).await;
    wait_for_batch_summary(&world).await;
    let executed = world.winrm.executed();
    let ran: Vec<String> = executed
        .iter()
        .map(|e| e.approved_command().expect("inside the wrapper").to_owned())
        .collect();
    assert_eq!(ran, approved(), "exactly the approved commands, in order");
    let requests = world.winrm.requests();
    assert!(
        requests
            .iter()
            .filter(|r| r.action.is_some())
            .all(|r| r.sealed),
        "every WS-Management request was sealed"
    );
    assert_eq!(world.winrm.ntlm_logons(), COMMANDS.len());
    assert_eq!(world.winrm.open_shells(), 0);
    finish(&world, app).await;
}

#[tokio::test]
async fn defend_runs_the_approved_commands_as_response_actions() {
    let world = World::start().await.unwrap();
    let endpoint = world.kibana.endpoint();
    endpoint.set_host(AGENT, HOST);
    endpoint.set_pending_polls(2);
    for (cmd, out) in COMMANDS {
        endpoint.set_output(
            AGENT,
            cmd,
            ExecuteOutput {
                stdout: out.to_string(),
                stderr: String::new(),
                shell_code: 0,
            },
        );
    }
    let app = world
        .start_app_with(&[
            ("RUNNER_HOST_GROUPS", "ws-fin-*=defend"),
            ("DEFEND_POLL_INTERVAL_SECS", "0.05"),
            ("DEFEND_EXECUTE_TIMEOUT_SECS", "120"),
        ])
        .await
        .unwrap();
    let incident = approve_and_wait(&world, &app, IncidentState::Executed).await;
    wait_for_batch_summary(&world).await;
    assert!(world.winrm.executed().is_empty(), "nothing went over WinRM");
    let actions = endpoint.actions();
    assert_eq!(actions.len(), COMMANDS.len());
    for (a, cmd) in actions.iter().zip(approved()) {
        assert_eq!(a.command, "execute");
        assert_eq!(a.body["endpoint_ids"], serde_json::json!([AGENT]));
        assert_eq!(a.body["parameters"]["command"], cmd.as_str());
        assert_eq!(a.body["parameters"]["timeout"], 120);
        assert_eq!(a.body["alert_ids"], serde_json::json!([ALERT_ID]));
        assert_eq!(a.body["agent_type"], "endpoint");
        assert!(a.completed && a.successful);
    }
    // Every action was polled until completed (two pending answers each).
    let gets = world
        .kibana
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with("/api/endpoint/action/"))
        .count();
    assert_eq!(gets, 3 * COMMANDS.len());
    let cmds = app.ctx.store.commands(&incident.id).await.unwrap();
    assert!(cmds.iter().all(|c| c.status == CommandStatus::Succeeded));
    assert_eq!(cmds[0].stdout.as_deref(), Some(COMMANDS[0].1));
    let replies = thread_replies(&world);
    assert!(replies.iter().any(|r| r.text.contains("WmiPrvSE")));
    finish(&world, app).await;
}

#[tokio::test]
async fn dry_run_records_and_runs_nothing() {
    let world = World::start().await.unwrap();
    let app = world
        .start_app_with(&[
            ("RUNNER_DEFAULT", "dry_run"),
            // No WinRM credentials needed when no host uses WinRM.
            ("WINRM_USERNAME", ""),
            ("WINRM_PASSWORD", ""),
        ])
        .await
        .unwrap();
    let incident = approve_and_wait(&world, &app, IncidentState::Executed).await;
    wait_for_batch_summary(&world).await;
    assert!(
        world.winrm.requests().is_empty(),
        "no request reached the host"
    );
    assert!(world.kibana.endpoint().actions().is_empty());
    let cmds = app.ctx.store.commands(&incident.id).await.unwrap();
    assert_eq!(cmds.len(), COMMANDS.len());
    for c in &cmds {
        assert!(
            c.stdout
                .as_deref()
                .unwrap_or("")
                .starts_with("[dry run] not executed on WS-FIN-042"),
            "{c:?}"
        );
    }
    let replies = thread_replies(&world);
    assert_eq!(
        replies
            .iter()
            .filter(|r| r.text.contains("[dry run]"))
            .count(),
        COMMANDS.len()
    );
    finish(&world, app).await;
}

#[tokio::test]
async fn a_failure_stops_the_batch_when_configured() {
    let world = World::start().await.unwrap();
    world
        .winrm
        .set_response(COMMANDS[1].0, "", "Access is denied.\r\n", 5);
    let app = world
        .start_app_with(&[("RUNNER_CONTINUE_ON_FAILURE", "false")])
        .await
        .unwrap();
    let incident = approve_and_wait(&world, &app, IncidentState::ExecutionFailed).await;
    assert_eq!(
        world.winrm.executed().len(),
        2,
        "nothing after the failure ran"
    );
    let cmds = app.ctx.store.commands(&incident.id).await.unwrap();
    let statuses: Vec<&str> = cmds.iter().map(|c| c.status.as_str()).collect();
    assert_eq!(statuses[..2], ["succeeded", "failed"]);
    assert!(
        statuses[2..].iter().all(|s| *s == "skipped"),
        "{statuses:?}"
    );
    assert_eq!(cmds[1].exit_code, Some(5));
    assert!(
        cmds[1]
            .stderr
            .as_deref()
            .unwrap()
            .contains("Access is denied.")
    );
    wait_for_batch_summary(&world).await;
    let replies = thread_replies(&world);
    assert!(
        replies.iter().any(|r| r
            .text
            .contains("6 command(s) were not run: command 2 failed")),
        "{:#?}",
        replies.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    finish(&world, app).await;
}

#[tokio::test]
async fn the_batch_deadline_stops_a_hanging_command_and_deletes_its_shell() {
    let world = World::start().await.unwrap();
    world.winrm.set_delay(COMMANDS[0].0, usize::MAX);
    let app = world
        .start_app_with(&[("RUNNER_BATCH_TIMEOUT_SECS", "1.5")])
        .await
        .unwrap();
    let incident = approve_and_wait(&world, &app, IncidentState::ExecutionFailed).await;
    let cmds = app.ctx.store.commands(&incident.id).await.unwrap();
    assert_eq!(cmds[0].status, CommandStatus::Failed);
    assert!(
        cmds[0].error.as_deref().unwrap().contains("batch deadline"),
        "{:?}",
        cmds[0].error
    );
    assert!(cmds[1..].iter().all(|c| c.status == CommandStatus::Skipped));
    assert_eq!(world.winrm.executed().len(), 1);
    // The cancelled run still signals and deletes its shell (in the background).
    world
        .winrm
        .wait_until("the shell to be deleted", Duration::from_secs(10), |s| {
            s.shells_created == 1 && s.open_shells() == 0
        })
        .await
        .unwrap();
    finish(&world, app).await;
}

#[tokio::test]
async fn isolate_host_is_offered_by_policy_and_runs_through_defend() {
    let world = World::start().await.unwrap();
    let app = world
        .start_app_with(&[
            ("DEFEND_ALLOW_ISOLATE", "true"),
            ("DEFEND_POLL_INTERVAL_SECS", "0.05"),
        ])
        .await
        .unwrap();
    let incident = wait_for_state(&app, IncidentState::AwaitingApproval, T)
        .await
        .unwrap();
    let alert: Alert = serde_json::from_str(&incident.alert_json).unwrap();
    assert!(triage_bot::runners::isolate_offer(
        &app.ctx.settings,
        &alert
    ));
    let off = world.settings_with(&[]).unwrap();
    assert!(
        !triage_bot::runners::isolate_offer(&off, &alert),
        "off unless the policy allows it"
    );
    let mut no_agent = alert.clone();
    no_agent.raw.as_object_mut().unwrap().remove("agent");
    assert!(!triage_bot::runners::isolate_offer(
        &app.ctx.settings,
        &no_agent
    ));

    triage_bot::pipeline::execute::isolate(&app.ctx, &incident)
        .await
        .expect("isolated");
    let endpoint = world.kibana.endpoint();
    assert_eq!(endpoint.isolated(), vec![AGENT.to_owned()]);
    let actions = endpoint.actions();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].command, "isolate");
    assert_eq!(actions[0].body["alert_ids"], serde_json::json!([ALERT_ID]));
    // The body also holds against Kibana's published schema (IsolateRouteRequestBody).
    let file = world.dir.join("endpoint-requests.json");
    std::fs::write(
        &file,
        serde_json::json!([{"method": "POST", "path": "/api/endpoint/action/isolate", "body": actions[0].body}])
            .to_string(),
    )
    .unwrap();
    let specs = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/specs/kibana");
    emulators::pycheck::run_check(
        "kibana_contract_check.py",
        &[specs.to_string(), file.display().to_string()],
    )
    .await
    .unwrap_or_else(|e| panic!("Kibana contract check: {e}"));
    let audit = app.ctx.store.audit_trail(&incident.id).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.event == "HostIsolation" && a.detail.contains("\"succeeded\":true"))
    );
    assert!(world.winrm.executed().is_empty());
    finish(&world, app).await;
}

#[tokio::test]
async fn endpoint_client_response_actions_against_the_emulator() {
    use triage_bot::clients::kibana::KibanaError;
    use triage_bot::clients::kibana::endpoint::{ActionRequest, EndpointClient, ProcessRef};
    let world = World::start().await.unwrap();
    // In a space: every call goes to /s/soc/api/endpoint/...
    let settings = world.settings_with(&[("KIBANA_SPACE", "soc")]).unwrap();
    let client = EndpointClient::new(
        triage_bot::clients::kibana::KibanaHttp::new(&settings.kibana).unwrap(),
    );
    let poll = Duration::from_millis(20);
    let procs = client
        .running_processes(ActionRequest::for_agent(AGENT))
        .await
        .unwrap();
    assert_eq!(procs.command, "running-processes");
    assert!(!procs.is_completed);
    let done = client.wait(&procs.id, poll, T).await.unwrap();
    assert!(done.was_successful);
    assert_eq!(done.content(AGENT).unwrap()["entries"][0]["pid"], "624");

    let killed = client
        .kill_process(ActionRequest::for_agent(AGENT), &ProcessRef::Pid(3312))
        .await
        .unwrap();
    assert_eq!(killed.command, "kill-process");
    client.wait(&killed.id, poll, T).await.unwrap();

    let iso = client
        .isolate(ActionRequest::for_agent(AGENT))
        .await
        .unwrap();
    client.wait(&iso.id, poll, T).await.unwrap();
    assert_eq!(world.kibana.endpoint().isolated(), vec![AGENT.to_owned()]);
    let un = client
        .unisolate(ActionRequest::for_agent(AGENT))
        .await
        .unwrap();
    client.wait(&un.id, poll, T).await.unwrap();
    assert!(world.kibana.endpoint().isolated().is_empty());

    // Kibana's schema errors come back as Status with its message.
    let err = client
        .isolate(ActionRequest::for_agent(""))
        .await
        .unwrap_err();
    assert!(
        matches!(err, KibanaError::Status { status: 400, ref message } if message.contains("endpoint_ids")),
        "{err:?}"
    );
    // A failing agent: the action completes unsuccessfully with the reason.
    world
        .kibana
        .endpoint()
        .fail_agent(AGENT, "agent is offline");
    let act = client
        .execute(
            ActionRequest::for_agent(AGENT),
            "whoami",
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let done = client.wait(&act.id, poll, T).await.unwrap();
    assert!(!done.was_successful);
    let reason = triage_bot::runners::defend::execute_outcome(&done, AGENT).unwrap_err();
    assert!(reason.contains("agent is offline"), "{reason}");

    let paths: Vec<String> = world
        .kibana
        .requests()
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert!(
        paths
            .iter()
            .filter(|p| p.contains("/api/endpoint/"))
            .all(|p| p.starts_with("/s/soc/api/endpoint/action")),
        "{paths:?}"
    );
}

#[tokio::test]
async fn a_host_that_refuses_before_the_command_is_sent_is_tried_again_and_each_command_runs_once()
{
    let world = World::start().await.unwrap();
    let app = world.start_app().await.unwrap();
    wait_for_approval_request(&world).await;
    // The WinRM service is restarting: the next two requests (the first shell's Create, then
    // the retry's) get 503 before anything is handled.
    world.winrm.fail_next(2, 503);
    let (status, _) = world.click(&app, HANDLER_ID, ACTION_APPROVE).await.unwrap();
    assert_eq!(status, 200);
    if let Err(e) = wait_for_state(&app, IncidentState::Executed, T).await {
        let i = app.ctx.store.incidents().await.unwrap().remove(0);
        let errors: Vec<_> = app
            .ctx
            .store
            .commands(&i.id)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|c| c.error)
            .collect();
        panic!("{e}: {errors:?}");
    }
    let ran: Vec<String> = world
        .winrm
        .executed()
        .into_iter()
        .filter_map(|e| e.approved_command().map(String::from))
        .collect();
    assert_eq!(ran, approved(), "every command once, in order");
    finish(&world, app).await;
}
