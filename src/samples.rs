//! The sample incident: one critical alert (a WMI Run-key persistence on a finance
//! workstation), the answer a model gives about it, and what the host prints for each proposed
//! command. The demo, the benchmarks, the flow tests and the safety gate's unit tests all use
//! this one story, so what the demo shows is what the tests check.

use serde_json::{Value, json};

pub const HOST: &str = "WS-FIN-042";
pub const HOST_IP: &str = "10.20.4.42";
pub const ALERT_ID: &str = "3f1c0b9e6a7d4e58b2c2a1f0d9e8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0";
pub const ALERT_INDEX: &str = ".internal.alerts-security.alerts-default-000001";
pub const CHANNEL: &str = "C0SOCALERTS";
pub const HANDLER_ID: &str = "U0ALICE";
pub const HANDLER_NAME: &str = "Alice Analyst";
pub const OTHER_USER: &str = "U0MALLORY";
pub const BOT_TOKEN: &str = "xoxb-demo-bot-token";
pub const SIGNING_SECRET: &str = "demo-signing-secret-0123456789";
pub const WINRM_USER: &str = "CORP\\svc-triage";
pub const WINRM_PASSWORD: &str = "demo-winrm-password";

/// The commands the scripted assistant proposes, with what the host answers to each.
pub const COMMANDS: [(&str, &str); 8] = [
    (
        "Get-Process -Id 3312 | Select-Object Id,ProcessName,Path,StartTime",
        "Id ProcessName Path                                   StartTime\r\n-- ----------- ----                                   ---------\r\n3312 WmiPrvSE  C:\\Windows\\System32\\wbem\\WmiPrvSE.exe 3/4/2025 10:14:51 AM\r\n",
    ),
    (
        "Get-ItemProperty -Path 'HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run'",
        "OneDriveUpdate : C:\\ProgramData\\odu\\odupd.exe /silent\r\nSecurityHealth : C:\\Windows\\system32\\SecurityHealthSystray.exe\r\n",
    ),
    (
        "Get-FileHash -Path 'C:\\ProgramData\\odu\\odupd.exe' -Algorithm SHA256",
        "Algorithm Hash                                                             Path\r\nSHA256    9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08 C:\\ProgramData\\odu\\odupd.exe\r\n",
    ),
    (
        "Get-NetTCPConnection -State Established | Where-Object { $_.OwningProcess -eq 3312 }",
        "LocalAddress LocalPort RemoteAddress RemotePort State\r\n10.20.4.42   49712     185.220.101.7 443        Established\r\n",
    ),
    (
        "Get-WinEvent -LogName 'Microsoft-Windows-WMI-Activity/Operational' -MaxEvents 5",
        "TimeCreated          Id Message\r\n3/4/2025 10:14:58 AM 5861 Namespace = //./root/subscription; Eventfilter = odu_filter\r\n",
    ),
    (
        "Remove-ItemProperty -Path 'HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run' -Name 'OneDriveUpdate'",
        "",
    ),
    ("Stop-Process -Id 3312 -Force", ""),
    (
        "Remove-Item -Path 'C:\\ProgramData\\odu\\odupd.exe' -Force",
        "",
    ),
];

/// A triage answer in the shape real models produce: bold headings, numbered lists, backticks.
pub fn triage_answer() -> String {
    let inv: Vec<String> = COMMANDS[..5]
        .iter()
        .enumerate()
        .map(|(i, (c, _))| format!("{}. `{c}`", i + 1))
        .collect();
    let rem: Vec<String> = COMMANDS[5..]
        .iter()
        .enumerate()
        .map(|(i, (c, _))| format!("{}. `{c}`", i + 1))
        .collect();
    format!(
        "**Summary:** The WMI provider host (WmiPrvSE.exe, PID 3312) on {HOST} ({HOST_IP}) wrote a Run key \
         `OneDriveUpdate` pointing at C:\\ProgramData\\odu\\odupd.exe, a classic WMI event-subscription persistence \
         technique (MITRE T1546.003 / T1547.001). The binary is unsigned and the host holds an outbound \
         connection to 185.220.101.7; treat this as an active compromise.\n\n\
         **Investigation Commands:**\n{}\n\n**Remediation Commands:**\n{}\n",
        inv.join("\n"),
        rem.join("\n")
    )
}

/// The critical alert document, as Elastic Security stores it.
pub fn alert_document(id: &str, timestamp: &str) -> Value {
    json!({
        "@timestamp": timestamp,
        "kibana.alert.uuid": id,
        "kibana.alert.status": "active",
        "kibana.alert.workflow_status": "open",
        "kibana.alert.severity": "critical",
        "kibana.alert.risk_score": 99,
        "kibana.alert.reason": format!("registry event with process WmiPrvSE.exe, by SYSTEM on {HOST} created critical alert Registry Run Key Set by WMI Provider Host."),
        "kibana.alert.rule.name": "Registry Run Key Set by WMI Provider Host",
        "kibana.alert.rule.uuid": "b7e2c1d0-5a4f-11ee-8c99-0242ac120002",
        "kibana.alert.rule.rule_id": "00000000-example-wmi-run-key",
        "kibana.alert.rule.tags": ["Domain: Endpoint", "OS: Windows", "Tactic: Persistence"],
        "kibana.alert.rule.threat": [{
            "framework": "MITRE ATT&CK",
            "tactic": { "id": "TA0003", "name": "Persistence", "reference": "https://attack.mitre.org/tactics/TA0003/" },
            "technique": [{ "id": "T1547", "name": "Boot or Logon Autostart Execution", "reference": "https://attack.mitre.org/techniques/T1547/" }]
        }],
        "kibana.space_ids": ["default"],
        "event.kind": "signal",
        "agent": { "id": "2b1eb7f7-bd61-436a-98af-c2b182043476", "type": "endpoint" },
        "host": { "name": HOST, "hostname": HOST, "ip": [HOST_IP, "fe80::4850:4f4f:4b53:8103"],
                  "os": { "family": "windows", "name": "Windows", "full": "Windows 10 Enterprise 22H2" } },
        "user": { "name": "SYSTEM", "domain": "NT AUTHORITY" },
        "process": { "name": "WmiPrvSE.exe", "pid": 3312, "executable": "C:\\Windows\\System32\\wbem\\WmiPrvSE.exe" },
        "registry": { "path": "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run\\OneDriveUpdate",
                      "data": { "strings": ["C:\\ProgramData\\odu\\odupd.exe /silent"] } }
    })
}
