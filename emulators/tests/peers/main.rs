//! The emulators held to independent, real clients: python `elasticsearch`, `slack_sdk` and
//! `pywinrm` against each emulator. One test binary.

mod independent_clients;
mod winrm_pywinrm;
