//! Ingest: where alerts come from. [`es_alerts`] polls the alert indices; every source ends in
//! [`crate::store::Store::ingest_alert`], whose unique alert id is the persisted "seen" set.

pub mod es_alerts;
