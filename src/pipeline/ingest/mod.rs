//! The ingest stage: where alerts come from, turned into the one [`crate::domain::Alert`] type.
//! [`es_alerts`] reads the alert indices page by page; what happens to each alert is the policy
//! stage's decision (`pipeline::policy`), and the loop that joins the two is `workers::intake`.

pub mod es_alerts;
