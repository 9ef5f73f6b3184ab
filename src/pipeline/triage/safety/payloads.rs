//! Techniques that are never legitimate in a proposed command, however they are spelled or
//! wherever they hide: download cradles, `Invoke-Expression`, encoded or decoded payloads,
//! dynamic or obfuscated invocation, credential dumping, AMSI tampering, raw sockets, hidden
//! windows. These rules read the normalised text (escapes, carets, look-alike characters
//! removed) rather than the parse, so that text the parser would read as data — a string handed
//! to a command that runs it later — is still caught; string contents count only when the
//! command changes state.

use std::sync::LazyLock;

use regex::Regex;

fn re(s: &str) -> Regex {
    Regex::new(s).expect("valid regex")
}

/// Credential stores named as files: a match anywhere, quoted or not, blocks the command — a
/// path to the SAM or NTDS database is only ever written to copy it.
pub static CREDENTIAL_STORES: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)harddiskvolumeshadowcopy|\\system32\\config\\(?:sam|security)\b|\bntds\.dit\b")
});

/// (pattern, reason): a match in the code (string contents masked) blocks the command.
pub static RULES: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    vec![
        (
            re(
                r"(?i)\b(?:invoke-webrequest|iwr|invoke-restmethod|irm|wget|curl|start-bitstransfer|bitsadmin)\b|net\.webclient|\bdownload(?:string|file|data)(?:async)?\b|\bopenread\b|system\.net\.http|msxml2\.(?:server)?xmlhttp|winhttp\.winhttprequest|\bcertutil(?:\.exe)?\b[^|;]*[-/](?:urlcache|verifyctl|split)|\bmpcmdrun(?:\.exe)?\b[^|;]*-downloadfile|\bxmlhttp\b|\binternetexplorer\.application\b",
            ),
            "download cradle: fetches content from the network",
        ),
        (
            re(r"(?i)\b(?:invoke-expression|iex)\b"),
            "Invoke-Expression / iex runs arbitrary text as code",
        ),
        (
            re(
                r#"(?i)(?:^|[\s;|&('"])-(?:e|ec|en|enc|enco|encod|encode|encoded|encodedc|encodedco|encodedcom|encodedcomm|encodedcomma|encodedcomman|encodedcommand)\s+[a-z0-9+/=]{8,}"#,
            ),
            "encoded command: the payload cannot be reviewed",
        ),
        (
            re(
                r"(?i)frombase64string|\bcertutil(?:\.exe)?\b[^|;]*[-/]decode|\[system\.text\.encoding\]::[a-z0-9]+\.getstring|\bgzipstream\b|\bdeflatestream\b",
            ),
            "decodes an embedded payload",
        ),
        (
            re(
                r"(?i)\[scriptblock\]::create|\.invoke\s*\(|\binvokescript\b|\badd-type\b|(?:^|[;|{(]\s*)[&.]\s*[($]|\bset-alias\b|\bnew-alias\b|\[char\]\s*\d+\s*[+-]|-join\s*\(\s*\[char|\[char\[\]\]|\breflection\.assembly\]::load|\bassembly\]::load|getdelegateforfunctionpointer|\$executioncontext\.invokecommand",
            ),
            "dynamic or obfuscated invocation hides what would run",
        ),
        (
            re(
                r"(?i)sekurlsa::|lsadump::|kerberos::|comsvcs(?:\.dll)?[^|;]*minidump|\bminidump\b|out-minidump|\bdcsync\b|get-gpppassword|invoke-(?:mimikatz|kerberoast|dcsync)|\breg(?:\.exe)?\s+save\s+hklm\\(?:sam|security|system)\b|\bvssadmin(?:\.exe)?\b[^|;]*\bcreate\s+shadow|\bkey=clear\b",
            ),
            "credential dumping tool or technique",
        ),
        (
            re(r"(?i)\bamsiutils\b|amsiinitfailed|amsicontext|amsiscanbuffer|\betweventwrite\b"),
            "disables or weakens security tooling (tampers with AMSI or ETW in memory)",
        ),
        (
            re(
                r"(?i)\bmarshal\]::(?:copy|alloc\w*|getdelegateforfunctionpointer)|\bvirtualalloc(?:ex)?\b|\bcreate(?:remote)?thread\b|\bwriteprocessmemory\b|\bgetprocaddress\b|\bntmapviewofsection\b",
            ),
            "injects code into memory (shellcode loader)",
        ),
        (
            re(r"(?i)net\.sockets\.(?:tcpclient|udpclient|socket|tcplistener)"),
            "opens a raw network connection (a reverse shell)",
        ),
        (
            re(r"(?i)win32_process\b[^|;]*\bcreate\b|\bcreate\b[^|;]*win32_process"),
            "remote process execution",
        ),
        (
            re(r"(?i)-w(?:indowstyle)?\s+h(?:idden)?\b|\b-noni(?:nteractive)?\b[^|;]*-w\s+1"),
            "hides its window",
        ),
    ]
});
