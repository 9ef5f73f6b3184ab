//! The ingest stage: where alerts come from, turned into the one [`crate::domain::Alert`] type.
//! [`es_alerts`] reads the alert indices — and the index a Kibana Index connector writes rule
//! actions to — page by page; [`webhook`] reads what a Kibana Webhook connector pushes;
//! [`action_doc`] reads a rule action's output (hits, alerts) for both. What happens to each
//! alert is the policy stage's decision (`pipeline::policy`), and the one function that joins the
//! two is `workers::intake::accept`.

pub mod action_doc;
pub mod es_alerts;
pub mod webhook;
